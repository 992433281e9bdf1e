"""The embedded store's SQLite helpers: metadata packed and unpacked."""

from __future__ import annotations

import json

import pytest

from crossmodal.stores.embedded.sqlite import pack_metadata, unpack_metadata


@pytest.mark.parametrize("metadata", [{}, {"album": "a0"}, {"n": 3, "x": 1.5, "ok": True, "none": None},
                                      {"tags": ["a", "b"], "nested": {"k": [1, {"z": "é"}]}},
                                      {"name": "caf\u00e9 \ufdd0d800", "emoji": "\U0001f600"}])
def test_unpack_metadata_reads_back_what_pack_metadata_wrote(metadata: dict) -> None:
    assert unpack_metadata(pack_metadata(metadata)) == metadata == json.loads(pack_metadata(metadata))


@pytest.mark.parametrize("text", [' {"a": 1} ', '{"a": 1}\n', "[1, 2]", '"s"', "3"])
def test_unpack_metadata_equals_json_loads_on_any_json(text: str) -> None:
    assert unpack_metadata(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "nan?", "{'a': 1}"])
def test_unpack_metadata_raises_what_json_loads_raises(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        unpack_metadata(text)
