"""The filter language: parsing (clear errors) and the reference semantics every store follows."""

from __future__ import annotations

import pytest

from crossmodal.errors import ConfigError
from crossmodal.stores.filters import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_VALUES,
    And,
    Cond,
    Not,
    Or,
    and_,
    matches,
    parse_where,
)


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
    ({"a": float("nan")}, "not a finite number"),
    ({"$or": {"a": 1}}, "non-empty list"),
    ({"a": {}}, "empty condition"),
    (["a"], "must be an object"),
])
def test_bad_filters_name_the_problem(bad, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_where(bad)


def _nested(op: str, depth: int) -> dict:
    where: dict = {"a": 1}
    for _ in range(depth):
        where = {"$not": where} if op == "$not" else {op: [where]}
    return where


@pytest.mark.parametrize("op", ["$and", "$or", "$not"])
def test_nesting_is_limited(op) -> None:
    assert parse_where(_nested(op, MAX_DEPTH)) is not None
    for depth in (MAX_DEPTH + 1, 10_000):  # far past the limit: refused, not a RecursionError
        with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels"):
            parse_where(_nested(op, depth))


def test_a_tree_built_in_code_is_held_to_the_same_limits() -> None:
    tree = Cond("a", "eq", 1)
    for _ in range(MAX_DEPTH + 1):
        tree = Not(tree)
    with pytest.raises(ConfigError, match="nested more than"):
        parse_where(tree)
    with pytest.raises(ConfigError, match="64 bits"):
        parse_where(Or((Cond("a", "eq", 1), Cond("b", "in", (1, 2**64)))))


def test_conditions_and_values_are_limited() -> None:
    assert parse_where({"$or": [{"a": i} for i in range(MAX_CONDITIONS)]}) is not None
    assert parse_where({f"k{i}": {"$exists": True} for i in range(MAX_CONDITIONS)}) is not None
    with pytest.raises(ConfigError, match=f"{MAX_CONDITIONS + 1} conditions; the limit is {MAX_CONDITIONS}"):
        parse_where({"$or": [{"a": i} for i in range(MAX_CONDITIONS + 1)]})
    with pytest.raises(ConfigError, match="conditions; the limit is"):  # two ops on one key are two conditions
        parse_where({f"k{i}": {"$gt": 0, "$lt": 9} for i in range(MAX_CONDITIONS // 2 + 1)})
    assert parse_where({"a": {"$in": list(range(MAX_VALUES))}}) is not None
    with pytest.raises(ConfigError, match=f"{MAX_VALUES + 1} values; the limit is {MAX_VALUES}"):
        parse_where({"a": {"$in": list(range(MAX_VALUES))}, "b": 1})


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 1.7976931348623157e308, -0.0])
def test_values_a_store_can_hold_pass(value) -> None:
    assert parse_where({"a": {"$lte": value}}) == Cond("a", "lte", value)


@pytest.mark.parametrize("value, message", [
    (2**63, "does not fit in 64 bits"),
    (-(2**63) - 1, "does not fit in 64 bits"),
    (2**64, "does not fit in 64 bits"),
    (10**400, "integer of 401 digits does not fit"),
    (float("inf"), "not a finite number"),
    (float("-inf"), "not a finite number"),
])
def test_values_no_store_can_hold_are_refused(value, message) -> None:
    for where in ({"a": value}, {"a": {"$gt": value}}, {"a": {"$in": [1, value]}}):
        with pytest.raises(ConfigError, match=message):
            parse_where(where)


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
