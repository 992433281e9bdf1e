"""Caption and metadata files: formats, matching rows to files, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossmodal.errors import ConfigError
from crossmodal.manifests import load_captions, load_metadata


def test_captions_tsv_with_header_and_extra_columns(tmp_path: Path) -> None:
    (tmp_path / "c.tsv").write_text("file\tcaption\tsource\na.png\ta cat\tweb\nsub/b.png\ta dog\tme\na.png\tanother\t\n")
    caps = load_captions(tmp_path / "c.tsv")
    assert caps.lookup_all(tmp_path / "x" / "a.png", "x/a.png") == [("a cat", {"source": "web"}), ("another", {})]
    assert caps.lookup_all(tmp_path / "sub" / "b.png", "whatever") == [("a dog", {"source": "me"})]
    assert caps.lookup_all(tmp_path / "other" / "b.png", "other/b.png") == []  # a row with a folder matches that path only


def test_headerless_tsv_jsonl_and_csv(tmp_path: Path) -> None:
    (tmp_path / "c.tsv").write_text("a.png\ta cat\n")
    assert load_captions(tmp_path / "c.tsv").lookup_all(tmp_path / "a.png", "a.png") == [("a cat", {})]
    (tmp_path / "c.jsonl").write_text(json.dumps({"image": "a.png", "text": "a cat", "lang": "en"}) + "\n")
    assert load_captions(tmp_path / "c.jsonl").lookup_all(tmp_path / "a.png", "a.png") == [("a cat", {"lang": "en"})]
    (tmp_path / "m.csv").write_text("path,album,year,rating\na.png,2024,2024,4.5\n")
    meta = load_metadata(tmp_path / "m.csv")
    assert meta.lookup(tmp_path / "a.png", "a.png") == {"album": 2024, "year": 2024, "rating": 4.5}
    assert meta.lookup(tmp_path / "b.png", "b.png") == {}


@pytest.mark.parametrize("name, content, message", [
    ("c.jsonl", "{not json}\n", "not JSON"),
    ("c.jsonl", json.dumps({"caption": "no file"}) + "\n", "names no file"),
    ("c.tsv", "file\tcaption\na.png\t\n", "has no caption"),
    ("c.xml", "<x/>", "use .tsv"),
])
def test_bad_caption_files_are_named(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_captions(tmp_path / name)
