"""`--where EXPR`: the strict grammar of the command line's filters."""

from __future__ import annotations

import pytest

from crossmodal.cli.where import parse_where_option
from crossmodal.errors import ConfigError


def test_accepted_forms() -> None:
    assert parse_where_option(["album=summer"]) == {"album": "summer"}
    assert parse_where_option(["year=2024"]) == {"year": {"$in": ["2024", 2024]}}
    assert parse_where_option(["starred=true"]) == {"starred": {"$in": ["true", True]}}
    assert parse_where_option(["rating>=3.5", "tag!=x"]) == {"$and": [{"rating": {"$gte": 3.5}},
                                                                      {"tag": {"$nin": ["x"]}}]}
    assert parse_where_option(["year>-5"]) == {"year": {"$gt": -5}}
    assert parse_where_option(["date<2024-06-01"]) == {"date": {"$lt": "2024-06-01"}}
    assert parse_where_option(["taken>=2024-06-01T12:30:00Z"]) == {"taken": {"$gte": "2024-06-01T12:30:00Z"}}
    assert parse_where_option(['name>="m"']) == {"name": {"$gte": "m"}}
    assert parse_where_option(['year="2024"']) == {"year": "2024"}  # quoted: the text only
    assert parse_where_option(['note=""']) == {"note": ""}
    assert parse_where_option(["tag=[a, b]"]) == {"tag": {"$in": ["a", "b"]}}
    assert parse_where_option(['tag!=[1,"x, y"]']) == {"tag": {"$nin": ["1", 1, "x, y"]}}
    assert parse_where_option([" taken at = noon "]) == {"taken at": "noon"}
    assert parse_where_option(["name=O'Brien"]) == {"name": "O'Brien"}
    assert parse_where_option([]) is None
    assert parse_where_option([], '{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(("expr", "why"), [
    ("year>>2020", "starts with '>'"),
    ("year==2020", "starts with '='"),
    ("year=>2020", "starts with '>'"),
    ("year<>2020", "starts with '>'"),
    ("year>=abc", "'abc' is not a number"),
    ("year<nan", "'nan' is not a number"),
    ("year>inf", "'inf' is not a number"),
    ("year>=1_000", "'1_000' is not a number"),
    ("year>=", "needs a number"),
    ("flag>true", "'true' is not a number"),
    ("year!2020", "'!2' is not an operator"),
    ("justakey", "no operator"),
    ("=2020", "the key is missing"),
    ("  >=3", "the key is missing"),
    ("$or=1", "cannot start with '$'"),
    ("album=", "the value is missing"),
    ("tag=[a,b", "unbalanced bracket"),
    ("tag=a,b]", "unbalanced bracket"),
    ("tag=[]", "the list is empty"),
    ("tag=[a,,b]", "empty element"),
    ("tag>[1,2]", "not a number"),
    ('title="unterminated', "not one complete"),
    ('title="a" and more', "not one complete"),
])
def test_every_malformed_expression_is_refused_naming_it_and_the_syntax(expr: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_where_option([expr])
    message = str(info.value)
    assert f"--where {expr!r}" in message and why in message
    assert "accepted forms: key=value, key!=value" in message and "key>=n" in message


def test_filter_json_is_checked_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match="not JSON"):
        parse_where_option([], "{nope")
    with pytest.raises(ConfigError, match="unknown operator '\\$gtt'"):
        parse_where_option([], '{"year": {"$gtt": 1}}')
