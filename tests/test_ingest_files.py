"""Odd files never abort or hang an ingest: each is indexed, or reported as a failure that names it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import crossmodal
from crossmodal.ingest import discover, ingest
from crossmodal.testing.fake import fake_model

from .test_ingest import picture

pytestmark = pytest.mark.timeout(60)  # what used to hang fails instead


@pytest.fixture
def setup(tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        picture(folder / f"p{i}.png", i)
    st = crossmodal.open_store(tmp_path / "store")
    col = st.collection("photos", model=fake_model(dim=16))
    yield folder, col
    st.close()


def failures(report) -> dict[str, str]:
    return {Path(f).name: why for f, why in report.failed}


def test_a_file_name_that_is_not_utf8_is_indexed_and_found_again(setup) -> None:
    folder, col = setup
    raw = os.fsencode(folder) + b"/bad_\xff.png"
    picture(Path(os.fsdecode(raw)), 7)
    with open(os.fsencode(folder) + b"/note_\xfe.txt", "wb") as fh:
        fh.write(b"a note about a bad name")
    report = ingest(col, [folder], workers=0)
    assert (report.added, report.failed) == (5, [])
    image = next(r for r in col.items(modality="image") if r.reference.startswith("bad_"))
    assert os.fsencode(col.resolve(image.reference)) == raw  # the reference leads back to the same bytes
    hit = col.search(image=os.fsdecode(raw), modality="image", top_k=1)[0]
    assert hit.id == image.id and os.fsencode(hit.path) == raw and hit.score == pytest.approx(1.0, abs=1e-5)
    note = col.search("a note about a bad name", modality="text", top_k=1)[0]
    assert os.fsencode(col.resolve(note.reference)) == os.fsencode(folder) + b"/note_\xfe.txt"
    assert ingest(col, [folder], workers=0).unchanged == 5  # found again on a rerun: nothing to do


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs")
def test_a_fifo_and_a_link_to_a_device_are_reported_not_read(setup) -> None:
    folder, col = setup
    os.mkfifo(folder / "p.jpg")
    os.symlink("/dev/zero", folder / "z.jpg")
    report = ingest(col, [folder], workers=0)
    assert report.added == 3 and set(failures(report)) == {"p.jpg", "z.jpg"}
    assert all("not a regular file" in why for why in failures(report).values())
    alone = ingest(col, [folder / "p.jpg"], workers=0)  # named on its own: a failure, not a usage error
    assert set(failures(alone)) == {"p.jpg"}


def test_files_over_the_size_limit_are_reported(setup) -> None:
    folder, col = setup
    (folder / "big.txt").write_text("word " * 100)
    report = ingest(col, [folder], workers=0, max_file_size=200)
    assert report.added == 3 and "larger than the limit of 200 bytes" in failures(report)["big.txt"]
    assert ingest(col, [folder], workers=0).added == 1  # the default limit is far larger


def test_an_unreadable_folder_is_reported(setup, monkeypatch) -> None:
    folder, col = setup
    (folder / "locked").mkdir()
    picture(folder / "locked" / "x.png", 5)
    real = os.scandir

    def scandir(path=".", *args):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path, *args)

    monkeypatch.setattr(os, "scandir", scandir)
    report = ingest(col, [folder], workers=0)
    assert report.added == 3 and "cannot read the folder" in failures(report)["locked"]
    assert "Permission denied" in failures(report)["locked"]


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="needs real permissions: root reads a chmod 000 folder anyway")
def test_a_folder_without_read_permission_is_reported(setup) -> None:
    folder, col = setup
    locked = folder / "locked"
    locked.mkdir()
    picture(locked / "x.png", 5)
    locked.chmod(0)
    try:
        found = discover([folder], failed=(failed := []))
    finally:
        locked.chmod(0o755)
    assert len(found) == 3 and [Path(f).name for f, _ in failed] == ["locked"]
