"""Re-indexing only adds and updates what it is given: nothing from earlier runs goes unless asked, and every
removal is counted (the rules are in docs/collections.md, "What a re-index keeps and removes")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import crossmodal
from crossmodal.ingest import ingest
from crossmodal.testing.fake import fake_model

from .test_ingest import picture


def counts(report) -> tuple[int, int, int, int, int, int]:
    return report.added, report.updated, report.unchanged, report.moved, report.removed, len(report.failed)


def snapshot(col) -> dict[str, tuple]:
    """Every item: id -> (modality, reference, text, metadata)."""
    return {r.id: (r.modality, r.reference, r.text, dict(r.metadata)) for r in col.items()}


@pytest.fixture
def captioned(tmp_path: Path):
    """Six images (three in 2024/), a note, captions for p0 (two) and 2024/p1 (one), metadata for both."""
    folder = tmp_path / "photos"
    (folder / "2024").mkdir(parents=True)
    for i in range(6):
        picture(folder / ("2024" if i % 2 else ".") / f"p{i}.png", i)
    (folder / "notes.md").write_text("we saw a red circle")
    caps = tmp_path / "caps.tsv"
    caps.write_text("file\tcaption\tby\np0.png\ta red thing\tme\np0.png\tsomething red\tyou\n"
                    "2024/p1.png\ta blue thing\tme\n")
    meta = tmp_path / "meta.jsonl"
    meta.write_text(json.dumps({"file": "p0.png", "album": "a", "year": 2024}) + "\n"
                    + json.dumps({"file": "2024/p1.png", "album": "b"}) + "\n"
                    + json.dumps({"file": "notes.md", "album": "c"}) + "\n")
    st = crossmodal.open_store(tmp_path / "store")
    col = st.collection("photos", model=fake_model(dim=16))
    first = ingest(col, [folder], captions=caps, metadata=meta, workers=0)
    assert counts(first) == (7 + 2 * 3, 0, 0, 0, 0, 0)  # 7 files, 3 captions (a text and a pair each)
    yield folder, col, caps, meta
    st.close()


def test_a_rerun_without_captions_or_metadata_keeps_them(captioned) -> None:
    folder, col, caps, meta = captioned
    before = snapshot(col)
    report = ingest(col, [folder], workers=0)
    assert counts(report) == (0, 0, 13, 0, 0, 0)
    assert snapshot(col) == before  # every caption and pair item, and every file's metadata, as it was
    assert col.count(where={"album": "a"}) == 5  # p0's image, two captions, two pairs


def test_a_rerun_of_a_sub_folder_touches_nothing_else(captioned) -> None:
    folder, col, caps, meta = captioned
    before = snapshot(col)
    report = ingest(col, [folder / "2024"], workers=0)
    assert counts(report) == (0, 0, 5, 0, 0, 0)  # p1 (image, caption, pair), p3, p5
    assert snapshot(col) == before


def test_a_changed_image_keeps_its_captions_and_metadata_without_the_files(captioned) -> None:
    folder, col, caps, meta = captioned
    picture(folder / "p0.png", 100)  # new content: the image and its pairs are embedded again
    report = ingest(col, [folder], workers=0)
    assert counts(report) == (0, 3, 10, 0, 0, 0)  # p0's image and two pairs updated; its captions unchanged
    pairs = {r.text: dict(r.metadata) for r in col.items(modality="pair") if r.reference == "p0.png"}
    assert pairs == {"a red thing": {"album": "a", "year": 2024, "by": "me"},
                     "something red": {"album": "a", "year": 2024, "by": "you"}}
    hit = col.search(image=folder / "p0.png", text="a red thing", modality="pair", top_k=1)[0]
    assert hit.score == pytest.approx(1.0, abs=1e-5)  # the pair was embedded with the new image


def test_captions_that_list_a_file_replace_its_captions_and_count_the_removed(captioned, tmp_path: Path) -> None:
    folder, col, caps, meta = captioned
    new_caps = tmp_path / "new.tsv"
    new_caps.write_text("file\tcaption\np0.png\ta crimson thing\n")  # p0: one new caption instead of two
    report = ingest(col, [folder], captions=new_caps, workers=0)
    # caption #0 and pair #0 of p0 are rewritten (same ids), caption #1 and pair #1 go; p1's caption is kept
    assert counts(report) == (0, 2, 9, 0, 2, 0)
    texts = sorted(r.text for r in col.items(modality="text") if r.metadata.get("image"))
    assert texts == ["a blue thing", "a crimson thing"]
    p0_caption = next(r for r in col.items(modality="text") if r.text == "a crimson thing")
    assert dict(p0_caption.metadata) == {"album": "a", "year": 2024, "image": "p0.png"}  # its metadata stays
    assert col.count() == 13 - 2


def test_metadata_that_lists_a_file_replaces_its_metadata_on_all_its_items(captioned, tmp_path: Path) -> None:
    folder, col, caps, meta = captioned
    new_meta = tmp_path / "new.csv"
    new_meta.write_text("file,album\np0.png,best\n")
    report = ingest(col, [folder], metadata=new_meta, workers=0)
    assert counts(report) == (0, 5, 8, 0, 0, 0)  # p0's image, captions and pairs: new metadata, no embedding
    p0 = {r.modality + (r.text or ""): dict(r.metadata) for r in col.items() if r.source == "p0.png"}
    assert p0 == {"image": {"album": "best"},
                  "texta red thing": {"album": "best", "by": "me", "image": "p0.png"},
                  "textsomething red": {"album": "best", "by": "you", "image": "p0.png"},
                  "paira red thing": {"album": "best", "by": "me"},
                  "pairsomething red": {"album": "best", "by": "you"}}
    assert col.count(where={"album": "b"}) == 3 and col.count(where={"album": "c"}) == 1  # p1, notes: kept


def test_prune_makes_the_given_captions_and_metadata_the_whole_list(captioned, tmp_path: Path) -> None:
    folder, col, caps, meta = captioned
    only_p0 = tmp_path / "only-p0.tsv"
    only_p0.write_text("file\tcaption\tby\np0.png\ta red thing\tme\np0.png\tsomething red\tyou\n")
    no_meta = tmp_path / "meta.csv"
    no_meta.write_text("file,album\np0.png,a\n")
    (folder / "p4.png").unlink()
    report = ingest(col, [folder], captions=only_p0, metadata=no_meta, prune=True, workers=0)
    # p1 loses its caption and pair (2 removed) and its metadata (its image updated); p4 is pruned;
    # p0 loses "year" (5 items updated); notes.md loses its album (1 updated)
    assert counts(report) == (0, 7, 3, 0, 3, 0)
    assert col.count() == 13 - 3
    assert {dict(r.metadata).get("album") for r in col.items() if r.source != "p0.png"} == {None}


def test_a_text_files_items_follow_its_content_and_the_removed_are_counted(captioned) -> None:
    folder, col, caps, meta = captioned
    (folder / "notes.md").write_text("we saw a red circle\nand a blue square\n")
    report = ingest(col, [folder], lines=True, workers=0)
    assert counts(report) == (2, 0, 12, 0, 1, 0)  # two line items replace the whole-file item
    lines = {r.reference: dict(r.metadata) for r in col.items(modality="text") if r.source == "notes.md"}
    assert lines == {"notes.md#L1": {"album": "c", "line": 1}, "notes.md#L2": {"album": "c", "line": 2}}
    (folder / "notes.md").write_text("and a blue square\n")
    report = ingest(col, [folder], lines=True, workers=0)
    assert counts(report) == (0, 1, 12, 0, 1, 0)  # line 1 holds a new text (embedded again), line 2 goes


def test_a_file_that_cannot_be_read_keeps_its_items(captioned) -> None:
    folder, col, caps, meta = captioned
    before = snapshot(col)
    (folder / "notes.md").write_bytes("caf\xe9".encode("latin-1"))
    report = ingest(col, [folder], workers=0)
    assert [Path(f).name for f, _ in report.failed] == ["notes.md"] and report.removed == 0
    assert snapshot(col) == before


def test_a_renamed_image_takes_its_captions_and_metadata_along(captioned) -> None:
    folder, col, caps, meta = captioned
    (folder / "p0.png").rename(folder / "zero.png")
    report = ingest(col, [folder], workers=0)
    assert counts(report) == (0, 0, 8, 5, 0, 0)  # the image, two captions and two pairs moved: nothing embedded
    moved = {r.modality + (r.text or ""): (r.reference, dict(r.metadata)) for r in col.items()
             if r.source == "zero.png"}
    assert moved == {"image": ("zero.png", {"album": "a", "year": 2024}),
                     "texta red thing": ("a red thing", {"album": "a", "year": 2024, "by": "me", "image": "zero.png"}),
                     "textsomething red": ("something red",
                                           {"album": "a", "year": 2024, "by": "you", "image": "zero.png"}),
                     "paira red thing": ("zero.png", {"album": "a", "year": 2024, "by": "me"}),
                     "pairsomething red": ("zero.png", {"album": "a", "year": 2024, "by": "you"})}
    assert not [r for r in col.items() if r.source == "p0.png"] and col.count() == 13


def test_a_renamed_text_file_takes_its_metadata_along(captioned) -> None:
    folder, col, caps, meta = captioned
    (folder / "notes.md").rename(folder / "trip.md")
    report = ingest(col, [folder], workers=0)
    assert counts(report) == (0, 0, 12, 1, 0, 0)
    moved = next(r for r in col.items(modality="text") if r.source == "trip.md")
    assert (moved.reference, dict(moved.metadata)) == ("trip.md", {"album": "c"})
