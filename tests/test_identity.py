"""Stable ids and content hashes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from crossmodal.identity import file_stamp, hash_file, hash_image_input, hash_text, make_id


def test_ids_depend_on_modality_and_key_only() -> None:
    assert make_id("image", "a.png") == make_id("image", "a.png")
    assert len({make_id("image", "a.png"), make_id("pair", "a.png"), make_id("image", "b.png")}) == 3
    assert len(make_id("text", "x" * 10_000)) == 16


def test_hashes_follow_content(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(path)
    data = path.read_bytes()
    assert hash_file(path) == hash_image_input(path) == hash_image_input(data)
    assert hash_image_input(Image.open(io.BytesIO(data))) != hash_image_input(Image.new("RGB", (4, 4), (0, 255, 0)))
    arr = np.zeros((2, 2, 3), dtype=np.uint8)
    assert hash_image_input(arr) != hash_image_input(arr.astype(np.uint16))
    assert hash_text("é") != hash_text("e")
    stamp = file_stamp(path)
    os.utime(path, ns=(1, 1))
    assert file_stamp(path) != stamp and hash_file(path) == hash_image_input(data)


def test_a_pair_has_one_content_hash_recipe_whoever_adds_it(tmp_path) -> None:
    import crossmodal
    from crossmodal.identity import content_hash, hash_file, pair_key
    from crossmodal.ingest import ingest
    from crossmodal.testing.fake import fake_model

    from .test_ingest import picture

    folder = tmp_path / "photos"
    folder.mkdir()
    picture(folder / "p.png", 3)
    (tmp_path / "caps.tsv").write_text("file\tcaption\np.png\ta red thing\n")
    model = fake_model(dim=8)
    indexed = crossmodal.open_store("memory://").collection("c", model=model)
    ingest(indexed, [folder], captions=tmp_path / "caps.tsv", image_weight=1, workers=0)
    added = crossmodal.open_store("memory://").collection("c", model=model)
    added.add_pairs([folder / "p.png"], ["a red thing"], image_weight=1.0)
    (by_ingest,) = indexed.items(modality="pair")
    (by_add,) = added.items(modality="pair")
    assert pair_key("a red thing", 1) == pair_key("a red thing", 1.0)  # one weight, however it is written
    assert by_ingest.content_hash == by_add.content_hash == content_hash(
        "pair", text=pair_key("a red thing", 1.0), image_hash=hash_file(folder / "p.png"))
