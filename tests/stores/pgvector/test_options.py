"""PgvectorOptions: the URI's query string and keyword arguments, one precedence, the same messages as ever."""

from __future__ import annotations

import pytest

from crossmodal.errors import ConfigError
from crossmodal.stores.pgvector.options import PgvectorOptions, libpq_uri, masked

URI = "postgresql://me:s3cret@db:5432/app?schema=photos&precision=f16&ef_search=200&sslmode=require"


def test_query_options_are_ours_and_the_rest_goes_to_libpq() -> None:
    o = PgvectorOptions.from_uri(URI)
    assert (o.schema, o.precision, o.ef_search, o.m, o.ef_construction) == ("photos", "f16", 200, 16, 128)
    assert (o.iterative_scan, o.pool_min, o.pool_max, o.connect_timeout, o.maintenance_work_mem) == (
        "relaxed_order", 1, 10, 10.0, "1GB")
    assert libpq_uri(URI) == "postgresql://me:s3cret@db:5432/app?sslmode=require"
    assert masked(URI).startswith("postgresql://me:***@db:5432/app?")


def test_a_keyword_wins_over_the_uri_which_wins_over_the_default() -> None:
    o = PgvectorOptions.from_uri(URI, precision="f32", pool_max=3, schema=None)
    assert (o.precision, o.pool_max, o.schema, o.ef_search) == ("f32", 3, "photos", 200)


@pytest.mark.parametrize("uri, options, message", [
    ("postgresql://db/app?precision=f8", {}, "precision must be f32 or f16, got 'f8'"),
    ("postgresql://db/app", {"iterative_scan": "sometimes"}, "iterative_scan must be relaxed_order, strict_order"),
    ("postgresql://db/app?ef_search=0", {}, "ef_search must be from 1 to 1000, got 0"),
    ("postgresql://db/app?schema=" + "s" * 49, {}, "must be 1-48 characters"),
    ("postgresql://u:pw@db/app?m=lots", {}, r"store option m='lots' in postgresql://u:\*\*\*@db/app\?m=lots is not "
                                            "a valid int"),
    ("postgresql://db/app", {"pool_size": 4}, "unknown PostgreSQL store option.*pool_size"),
])
def test_bad_options_are_refused_naming_them(uri: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PgvectorOptions.from_uri(uri, **options)


def test_an_options_object_is_checked_too() -> None:
    with pytest.raises(ConfigError, match="precision must be f32 or f16"):
        PgvectorOptions(precision="f64")
    with pytest.raises(ConfigError, match="store option ef_search='x' is not a valid int"):
        PgvectorOptions(ef_search="x")  # type: ignore[arg-type]
