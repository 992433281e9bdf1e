"""EmbeddedOptions: keyword options only (a directory path has no query string), checked before anything opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmodal.errors import ConfigError
from crossmodal.store import open_store
from crossmodal.stores.embedded import EmbeddedOptions, EmbeddedStore


def test_defaults_and_the_derived_values() -> None:
    o = EmbeddedOptions()
    assert (o.exact_limit, o.durable, o.save_every, o.ann_params.dtype, o.ann_params.connectivity) == (
        10_000, True, 2_500, "bf16", 16)
    assert EmbeddedOptions(exact_limit=100).save_every == 1_000  # at least 1,000
    assert EmbeddedOptions(sync_every=7).save_every == 7 and EmbeddedOptions(sync_every=0).save_every == 2_500
    assert EmbeddedOptions(exact_limit="50").exact_limit == 50  # numbers as text (a settings value) are taken


@pytest.mark.parametrize("options, message", [
    ({"exact_limit": -1}, "exact_limit must be 0 or more"),
    ({"exact_limit": "many"}, "exact_limit='many' is not a valid int"),
    ({"connectivity": 1}, "connectivity must be at least 2"),
    ({"expansion_search": 0}, "expansion_search must be at least 1"),
    ({"ann_dtype": "f8"}, "ann_dtype must be one of bf16"),
    ({"exact_limt": 5}, "unknown embedded store option.*exact_limt.*known: exact_limit"),
])
def test_bad_options_are_refused_before_the_directory_is_made(tmp_path: Path, options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(tmp_path / "s", **options)
    assert not (tmp_path / "s").exists()


def test_an_options_object_opens_the_store(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "s", options=EmbeddedOptions(exact_limit=5, durable=False))
    assert store.options.exact_limit == 5 and not store.db.durable
    store.close()
    with pytest.raises(ConfigError, match="not both"):
        EmbeddedStore(tmp_path / "s", options=EmbeddedOptions(), exact_limit=5)
