"""The filter language: parsing (clear errors) and the reference semantics every store follows."""

from __future__ import annotations

import pytest

from crossmodal.errors import ConfigError
from crossmodal.stores.filters import And, Cond, Not, Or, and_, matches, parse_where


def test_parse_builds_a_small_tree() -> None:
    assert parse_where({"album": "2024"}) == Cond("album", "eq", "2024")
    assert parse_where({"y": {"$gte": 1, "$lt": 3}}) == And((Cond("y", "gte", 1), Cond("y", "lt", 3)))
    assert parse_where({"t": {"$in": ["a", "b"]}}) == Cond("t", "in", ("a", "b"))
    assert parse_where({"$or": [{"a": 1}, {"$not": {"b": 2}}]}) == Or((Cond("a", "eq", 1), Not(Cond("b", "eq", 2))))
    assert parse_where(None) is None and parse_where({}) is None
    assert and_(None, Cond("a", "eq", 1), None) == Cond("a", "eq", 1)


@pytest.mark.parametrize("bad, message", [
    ({"a": {"$regex": "x"}}, "unknown operator"),
    ({"$nor": []}, "unknown filter operator"),
    ({"a": {"$in": []}}, "non-empty list"),
    ({"a": {"$in": "abc"}}, "non-empty list"),
    ({"a": {"$exists": 1}}, "true or false"),
    ({"a": {"$gt": True}}, "not booleans"),
    ({"a": [1, 2]}, "values must be"),
    ({"a": None}, "values must be"),
    ({"a": float("nan")}, "values must be"),
    ({"$or": {"a": 1}}, "non-empty list"),
    ({"a": {}}, "empty condition"),
    (["a"], "must be an object"),
])
def test_bad_filters_name_the_problem(bad, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_where(bad)


META = {"album": "2024", "year": 2021, "rating": 4.5, "tags": ["cat", "pet"], "starred": True, "gone": None}


@pytest.mark.parametrize("where, expected", [
    ({"album": "2024"}, True),
    ({"album": 2024}, False),  # strings never equal numbers
    ({"year": 2021.0}, True),  # ints and floats compare as numbers
    ({"starred": True}, True),
    ({"starred": 1}, False),  # booleans never equal numbers
    ({"tags": "cat"}, True),  # a list matches when any element does
    ({"tags": {"$in": ["dog", "pet"]}}, True),
    ({"tags": {"$nin": ["dog", "pet"]}}, False),
    ({"tags": {"$ne": "cat"}}, False),
    ({"missing": {"$ne": "x"}}, True),  # negations also match items without the key
    ({"gone": {"$exists": False}}, True),  # null counts as absent
    ({"rating": {"$gt": 4, "$lte": 4.5}}, True),
    ({"album": {"$gte": "2023"}}, True),  # strings compare as strings
    ({"album": {"$gt": 2000}}, False),  # a range never matches a value of another type
    ({"$and": [{"year": {"$lt": 2022}}, {"$not": {"tags": "dog"}}]}, True),
    ({"$or": [{"year": 1999}, {"album": "1999"}]}, False),
])
def test_reference_semantics(where, expected) -> None:
    assert matches(parse_where(where), META) is expected
