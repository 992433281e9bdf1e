"""Ingest: re-indexing embeds only what changed, and reports exactly what it did."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import crossmodal
from crossmodal.ingest import discover, ingest
from crossmodal.testing.fake import fake_model


def picture(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((24, 24), Image.NEAREST).save(path)
    return path


def embedded_images(model) -> int:
    return sum(n for tower, n in model.encoder.calls if tower == "image")


@pytest.fixture
def setup(tmp_path: Path):
    folder = tmp_path / "photos"
    (folder / "2024").mkdir(parents=True)
    for i in range(6):
        picture(folder / ("2024" if i % 2 else ".") / f"p{i}.png", i)
    (folder / "notes.md").write_text("# trip\nwe saw a red circle")
    model = fake_model(dim=16)
    st = crossmodal.open_store(tmp_path / "store")
    col = st.collection("photos", model=model)
    yield folder, model, col
    st.close()


def counts(report) -> tuple[int, int, int, int, int, int]:
    return report.added, report.updated, report.unchanged, report.moved, report.removed, len(report.failed)


def test_rerun_after_touch_modify_rename_and_delete_embeds_only_changed_files(setup) -> None:
    folder, model, col = setup
    first = ingest(col, [folder], workers=0)
    assert counts(first) == (7, 0, 0, 0, 0, 0) and col.count() == 7
    assert embedded_images(model) == 6
    assert counts(ingest(col, [folder], workers=0)) == (0, 0, 7, 0, 0, 0)
    assert embedded_images(model) == 6  # nothing read, nothing embedded

    later = time.time() + 5
    os.utime(folder / "p0.png", (later, later))  # touched: same bytes, new mtime
    picture(folder / "2024" / "p1.png", 100)  # modified
    (folder / "2024" / "p3.png").rename(folder / "2024" / "renamed.png")  # renamed
    (folder / "p2.png").unlink()  # deleted
    picture(folder / "new.png", 200)  # added
    report = ingest(col, [folder], workers=0)
    assert counts(report) == (1, 1, 4, 1, 0, 0)  # new.png added, p1 updated, p0 p4 p5 notes same, p3 moved
    assert embedded_images(model) == 6 + 2  # only p1.png and new.png went through the model
    refs = {r.reference for r in col.items(modality="image")}
    assert "2024/renamed.png" in refs and "2024/p3.png" not in refs and "p2.png" in refs
    moved = col.search(image=folder / "2024" / "renamed.png", top_k=1)[0]
    assert moved.reference == "2024/renamed.png" and moved.score == pytest.approx(1.0, abs=1e-5)
    changed = col.get(moved.id, vector=True)
    np.testing.assert_allclose(changed.vector, model.embed_images([folder / "2024" / "renamed.png"])[0], atol=1e-6)

    pruned = ingest(col, [folder], prune=True, workers=0)
    assert counts(pruned) == (0, 0, 7, 0, 1, 0)
    assert "p2.png" not in {r.reference for r in col.items()} and col.count() == 7
    p1 = col.search(image=folder / "2024" / "p1.png", top_k=1)[0]
    assert p1.reference == "2024/p1.png" and p1.score == pytest.approx(1.0, abs=1e-5)


def test_text_files_one_item_each_or_one_per_line(setup) -> None:
    folder, model, col = setup
    ingest(col, [folder], workers=0)
    note = col.search("we saw a red circle", modality="text", top_k=1)[0]
    assert note.reference == "notes.md" and note.text == "# trip\nwe saw a red circle"
    (folder / "notes.md").write_text("# trip\n\nwe saw a red circle\nand a blue square\n")
    report = ingest(col, [folder], lines=True, workers=0)
    assert (report.added, report.removed, col.count(modality="text")) == (3, 1, 3)  # the lines replace the file
    hit = col.search("and a blue square", modality="text", top_k=1)[0]
    assert (hit.reference, hit.text, hit.metadata["line"]) == ("notes.md#L4", "and a blue square", 4)
    (folder / "notes.md").write_text("# trip\n\nwe saw a red circle\n")
    report = ingest(col, [folder], lines=True, workers=0)
    assert col.count(modality="text") == 2 and report.unchanged == 8 and report.removed == 1


def test_bad_files_are_listed_and_the_rest_is_indexed(setup) -> None:
    folder, model, col = setup
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (folder / "empty.txt").write_text("  \n")
    (folder / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    report = ingest(col, [folder], workers=0)
    failed = {Path(f).name: why for f, why in report.failed}
    assert set(failed) == {"broken.jpg", "empty.txt", "latin1.txt"}
    assert "UTF-8" in failed["latin1.txt"] and report.added == 7


def test_include_exclude_hidden_and_non_recursive(setup) -> None:
    folder, model, col = setup
    (folder / ".hidden").mkdir()
    picture(folder / ".hidden" / "x.png", 9)
    picture(folder / ".dot.png", 10)
    names = lambda **kw: sorted(s.path.relative_to(folder).as_posix() for s in discover([folder], **kw))  # noqa: E731
    assert names() == ["2024/p1.png", "2024/p3.png", "2024/p5.png", "notes.md", "p0.png", "p2.png", "p4.png"]
    assert names(recursive=False) == ["notes.md", "p0.png", "p2.png", "p4.png"]
    assert names(include=["*.md"]) == ["notes.md"]
    assert names(exclude=["2024"]) == ["notes.md", "p0.png", "p2.png", "p4.png"]
    assert names(include=["2024/*"], exclude=["p5.png"]) == ["2024/p1.png", "2024/p3.png"]


def test_captions_and_metadata_files(setup, tmp_path: Path) -> None:
    folder, model, col = setup
    (tmp_path / "caps.tsv").write_text("file\tcaption\tsource\np0.png\ta red thing\tme\n2024/p1.png\ta blue thing\tyou\n")
    (tmp_path / "meta.jsonl").write_text(json.dumps({"file": "p0.png", "album": "2024", "year": 2024}) + "\n"
                                         + json.dumps({"file": "2024/p1.png", "album": "2023", "year": 2023}) + "\n")
    report = ingest(col, [folder], captions=tmp_path / "caps.tsv", metadata=tmp_path / "meta.jsonl", workers=0)
    assert report.added == 7 + 2 * 2
    assert col.describe()["counts"] == {"image": 6, "text": 3, "pair": 2}
    pair = col.search(image=folder / "p0.png", text="a red thing", modality="pair", top_k=1)[0]
    assert pair.score == pytest.approx(1.0, abs=1e-5) and pair.metadata == {"album": "2024", "year": 2024, "source": "me"}
    assert [h.reference for h in col.search("thing", where={"year": {"$lte": 2023}}, modality="image")] == ["2024/p1.png"]
    # new metadata for an unchanged file: updated without embedding anything
    calls = len(model.encoder.calls)
    (tmp_path / "meta.jsonl").write_text(json.dumps({"file": "p0.png", "album": "best"}) + "\n")
    report = ingest(col, [folder], captions=tmp_path / "caps.tsv", metadata=tmp_path / "meta.jsonl", workers=0)
    assert report.updated == 3 and report.added == 0 and len(model.encoder.calls) == calls  # p0: 3 items
    assert col.count(where={"album": "best"}) == 3  # p0's image, caption and pair
    assert col.count(where={"album": "2023"}) == 3  # p1 is not in the new file: its metadata stays
    report = ingest(col, [folder], captions=tmp_path / "caps.tsv", metadata=tmp_path / "meta.jsonl", prune=True,
                    workers=0)
    assert report.updated == 3 and col.count(where={"album": "2023"}) == 0  # unless the file is the whole list


def test_moving_the_whole_folder_needs_no_embedding(setup, tmp_path: Path) -> None:
    folder, model, col = setup
    ingest(col, [folder], workers=0)
    calls = len(model.encoder.calls)
    moved = tmp_path / "moved-photos"
    shutil.move(folder, moved)
    report = ingest(col, [moved], workers=0)
    assert counts(report) == (0, 0, 7, 0, 0, 0) and len(model.encoder.calls) == calls
    assert col.root == moved
    assert col.search(image=moved / "p0.png", top_k=1)[0].path == str(moved / "p0.png")


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_decoding_workers_give_the_same_vectors(setup, processes: bool) -> None:
    folder, model, col = setup
    report = ingest(col, [folder], workers=2, processes=processes)
    assert report.added == 7
    for item in col.items(modality="image", vectors=True):
        np.testing.assert_allclose(item.vector, model.embed_images([folder / item.reference], workers=0)[0], atol=1e-6)
