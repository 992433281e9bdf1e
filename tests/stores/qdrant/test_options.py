"""QdrantOptions: the URI's query string and keyword arguments, one precedence, the same messages as ever."""

from __future__ import annotations

import pytest

import crossmodal
from crossmodal.errors import ConfigError
from crossmodal.stores.qdrant import QdrantLocalStore, QdrantOptions, QdrantStore


def test_query_options_and_defaults() -> None:
    o = QdrantOptions.from_uri("qdrant://q:6333?api_key=k&https=1&index=album,year,&hnsw_ef=64&precision=f16")
    assert (o.prefix, o.api_key, o.https, o.grpc, o.timeout, o.hnsw_ef, o.precision, o.index) == (
        "crossmodal", "k", True, False, 30, 64, "f16", ("album", "year"))


def test_a_keyword_wins_over_the_uri_which_wins_over_the_default() -> None:
    o = QdrantOptions.from_uri("qdrant://q?prefix=p&https=1&index=a&timeout=5", https=False, index=[], prefix="")
    assert (o.prefix, o.https, o.index, o.timeout) == ("p", False, (), 5)  # an empty prefix keyword is "not given"
    assert QdrantOptions.from_uri("qdrant://q?hnsw_ef=", index="x,y").hnsw_ef == 128
    assert QdrantOptions.from_uri("qdrant://q", index="x,y").index == ("x", "y")


@pytest.mark.parametrize("uri, options, message", [
    ("qdrant://q?prefx=x", {}, "unknown Qdrant store option.*prefx in qdrant://q; known: prefix, api_key"),
    ("qdrant://q", {"prefx": "x"}, "unknown Qdrant store option.*prefx"),
    ("qdrant://q?precision=f8", {}, "precision must be f32 or f16, got 'f8'"),
    ("qdrant://q?prefix=a.b", {}, "Qdrant prefix 'a.b' must be a plain name"),
    ("qdrant://q?hnsw_ef=wide", {}, "store option hnsw_ef='wide' is not a valid int"),
])
def test_bad_options_are_refused_naming_them(uri: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        QdrantOptions.from_uri(uri, **options)


def test_a_uri_without_a_host_or_folder_is_a_config_error() -> None:
    # ConfigError is a ValueError, and Qdrant's error mapping once turned it into a StoreError
    with pytest.raises(ConfigError, match="names a host"):
        crossmodal.open_store("qdrant://")
    with pytest.raises(ConfigError, match="needs a folder"):
        crossmodal.open_store("qdrant+local://")


def test_each_class_opens_its_own_scheme() -> None:
    with pytest.raises(ConfigError, match="QdrantStore opens qdrant:// URIs"):
        QdrantStore("qdrant+local://:memory:")
    local = QdrantLocalStore("qdrant+local://:memory:")
    assert local.local and not local.shared and QdrantStore.shared
    local.close()
