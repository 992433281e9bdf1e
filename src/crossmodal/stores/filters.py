"""One metadata filter language for every store, and its reference evaluator.

A filter is written as a dict, MongoDB-style::

    {"album": "2024"}                              equality
    {"year": {"$gte": 2020, "$lt": 2025}}          ranges ($gt $gte $lt $lte; numbers, or strings such as ISO dates)
    {"tags": {"$in": ["cat", "dog"]}}              any of ($nin: none of)
    {"album": {"$ne": "2023"}}                     not equal (also true when the key is missing)
    {"rating": {"$exists": True}}                  has a non-null value
    {"$or": [{"album": "2024"}, {"starred": True}]}, {"$and": [...]}, {"$not": {...}}

Keys at one level are ANDed. :func:`parse_where` turns the dict into a small
tree (:class:`Cond`, :class:`And`, :class:`Or`, :class:`Not`) that each
backend translates (SQL, JSONB, Qdrant payload filters). A
:class:`Selection` is what an operation applies to: modalities plus a filter.
:func:`matches` (a filter on metadata) and :func:`select` (a selection on an
item) are the reference semantics, used by the memory store, by Qdrant for
what its own filters cannot decide, and by the contract tests to check every
other backend:

* a list value matches when any element matches (``{"tags": "cat"}`` finds
  ``tags: ["cat", "pet"]``), as in MongoDB, Qdrant and Postgres ``@>``;
* comparisons are type-strict: numbers compare with numbers (``2020 ==
  2020.0``), strings with strings, booleans only with booleans (``True`` is
  not ``1``); a range never matches a value of another type;
* ``$ne`` and ``$nin`` are the negations of ``$eq`` and ``$in``, so they also
  match items without the key.

Limits, the same for every store and checked here, before any store sees the
filter (each is well inside what SQLite, PostgreSQL and Qdrant accept; see
docs/collections.md for the measurements):

* at most :data:`MAX_DEPTH` levels of ``$and``/``$or``/``$not`` (an object
  with several conditions is an ``$and`` too, so it is a level);
* at most :data:`MAX_CONDITIONS` conditions (``key <op> value`` tests);
* at most :data:`MAX_VALUES` values in all (each ``$in``/``$nin`` element counts);
* integers in the 64-bit range metadata can hold, finite floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Union

from ..errors import ConfigError

__all__ = ["MAX_CONDITIONS", "MAX_DEPTH", "MAX_VALUES", "OPS", "And", "Cond", "Filter", "Not", "Or", "Selection",
           "and_", "check_filter", "matches", "parse_where", "select", "values_of"]

#: comparison operators (the ``$`` is dropped in the tree)
OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists")
_RANGE = ("gt", "gte", "lt", "lte")

#: nested levels of $and / $or / $not (SQLite's parser, Qdrant's request nesting bound it; see the module docs)
MAX_DEPTH = 16
#: conditions in one filter (SQLite joins at most 500 terms in one compound query)
MAX_CONDITIONS = 256
#: values in one filter, $in/$nin elements included (SQLite's bound variables, PostgreSQL's jsonpath nesting)
MAX_VALUES = 4096
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Cond:
    """``key <op> value``. For ``in``/``nin`` the value is a tuple; for ``exists`` a bool."""

    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class And:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    part: Filter


Filter = Union[Cond, And, Or, Not]


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            shown = str(value) if abs(value) < 10**30 else f"of {len(str(abs(value)))} digits"
            raise ConfigError(f"filter {where}: integer {shown} does not fit in 64 bits "
                              "(metadata integers are 64-bit, -2**63 to 2**63-1)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"filter {where}: {value} is not a finite number")
        return value
    raise ConfigError(f"filter {where}: values must be str, int, float or bool, got {value!r}")


def _cond(key: str, op: str, value: Any) -> Cond:
    where = f"{key!r} ${op}"
    if op in ("in", "nin"):
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"filter {where} needs a non-empty list, got {value!r}")
        return Cond(key, op, tuple(_scalar(v, where) for v in value))
    if op == "exists":
        if not isinstance(value, bool):
            raise ConfigError(f"filter {where} needs true or false, got {value!r}")
        return Cond(key, op, value)
    value = _scalar(value, where)
    if op in _RANGE and isinstance(value, bool):
        raise ConfigError(f"filter {where}: ranges compare numbers or strings, not booleans")
    return Cond(key, op, value)


def _parse(node: Any, path: str) -> Filter:
    if not isinstance(node, Mapping):
        raise ConfigError(f"filter {path} must be an object like {{\"album\": \"2024\"}}, got {node!r}")
    parts: list[Filter] = []
    for key, spec in node.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"filter {path}: keys must be non-empty strings, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(spec, Sequence) or isinstance(spec, str) or not spec:
                raise ConfigError(f"filter {key} needs a non-empty list of filters")
            subs = tuple(_parse(s, f"{key}[{i}]") for i, s in enumerate(spec))
            parts.append(And(subs) if key == "$and" else Or(subs))
        elif key == "$not":
            parts.append(Not(_parse(spec, "$not")))
        elif key.startswith("$"):
            raise ConfigError(f"unknown filter operator {key!r} at {path}; use $and, $or, $not or a metadata key")
        elif isinstance(spec, Mapping):
            if not spec:
                raise ConfigError(f"filter {key!r}: empty condition")
            for op, value in spec.items():
                if not isinstance(op, str) or op[1:] not in OPS or not op.startswith("$"):
                    raise ConfigError(f"filter {key!r}: unknown operator {op!r}; use one of "
                                      + ", ".join("$" + o for o in OPS))
                parts.append(_cond(key, op[1:], value))
        else:
            parts.append(_cond(key, "eq", spec))
    if not parts:
        raise ConfigError(f"filter {path} is empty")
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _measure(f: Filter, depth: int, totals: list[int]) -> int:
    """The depth of ``f`` below ``depth``; adds its conditions and values to ``totals``."""
    if isinstance(f, Cond):
        totals[0] += 1
        totals[1] += len(f.value) if f.op in ("in", "nin") else 1
        return depth
    if depth >= MAX_DEPTH:  # stop at once: a tree too deep to walk is refused, not recursed through
        raise ConfigError(f"filter is nested more than {MAX_DEPTH} levels deep ($and, $or, $not, and objects "
                          f"holding several conditions, each add a level); the limit is {MAX_DEPTH}")
    parts = (f.part,) if isinstance(f, Not) else f.parts
    return max(_measure(p, depth + 1, totals) for p in parts)


def check_filter(f: Filter) -> Filter:
    """``f`` if it is within the limits of every store (see the module docs); else :class:`ConfigError`."""
    totals = [0, 0]
    _measure(f, 0, totals)
    conditions, values = totals
    if conditions > MAX_CONDITIONS:
        raise ConfigError(f"filter has {conditions} conditions; the limit is {MAX_CONDITIONS} "
                          "(for many values of one key use {\"key\": {\"$in\": [...]}})")
    if values > MAX_VALUES:
        raise ConfigError(f"filter holds {values} values; the limit is {MAX_VALUES}")
    return f


def _check_tree(f: Filter) -> Filter:
    """A tree built in code gets the checks a parsed dict gets: values first, then the limits."""
    check_filter(f)  # bounds the walk below
    stack: list[Filter] = [f]
    while stack:
        node = stack.pop()
        if isinstance(node, Cond):
            if node.op not in OPS:
                raise ConfigError(f"filter {node.key!r}: unknown operator {node.op!r}")
            _cond(node.key, node.op, list(node.value) if isinstance(node.value, tuple) else node.value)
        elif isinstance(node, Not):
            stack.append(node.part)
        else:
            stack.extend(node.parts)
    return f


def parse_where(where: Mapping[str, Any] | Filter | None) -> Filter | None:
    """A filter dict (or an already parsed tree, or None) -> a tree; :class:`ConfigError` naming the bad part,
    or the limit it is over."""
    if where is None:
        return None
    if isinstance(where, (Cond, And, Or, Not)):
        return _check_tree(where)
    if isinstance(where, Mapping) and not where:
        return None
    _check_nesting(where)
    return check_filter(_parse(where, "where"))


def _check_nesting(where: Any) -> None:
    """Refuse a dict nested far past the depth limit before parsing it (parsing recurses)."""
    stack = [(where, 0)]
    while stack:
        node, level = stack.pop()
        if level > 4 * MAX_DEPTH + 8:
            raise ConfigError(f"filter is nested more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH}")
        if isinstance(node, Mapping):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, level + 1) for v in node)


def and_(*filters: Filter | None) -> Filter | None:
    """All of the given filters (Nones dropped)."""
    parts = tuple(f for f in filters if f is not None)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(parts)


# -- the reference evaluator ----------------------------------------------------------------------------------------


def values_of(metadata: Mapping[str, Any], key: str) -> list[Any]:
    """The values a key holds: [] when missing or null, the elements of a list, else [value]."""
    value = metadata.get(key)
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v is not None]
    return [value]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    return "str"


def _equal(a: Any, b: Any) -> bool:
    return _kind(a) == _kind(b) and a == b


def _compare(op: str, a: Any, b: Any) -> bool:
    if _kind(a) != _kind(b) or _kind(a) == "bool":
        return False
    if op == "gt":
        return a > b
    if op == "gte":
        return a >= b
    if op == "lt":
        return a < b
    return a <= b


def _match_cond(cond: Cond, metadata: Mapping[str, Any]) -> bool:
    vals = values_of(metadata, cond.key)
    op = cond.op
    if op == "eq":
        return any(_equal(v, cond.value) for v in vals)
    if op == "ne":
        return not any(_equal(v, cond.value) for v in vals)
    if op == "in":
        return any(_equal(v, c) for v in vals for c in cond.value)
    if op == "nin":
        return not any(_equal(v, c) for v in vals for c in cond.value)
    if op == "exists":
        return bool(vals) == cond.value
    return any(_compare(op, v, cond.value) for v in vals)


def matches(f: Filter | None, metadata: Mapping[str, Any]) -> bool:
    """Whether an item with this metadata passes the filter (the reference semantics)."""
    if f is None:
        return True
    if isinstance(f, Cond):
        return _match_cond(f, metadata)
    if isinstance(f, And):
        return all(matches(p, metadata) for p in f.parts)
    if isinstance(f, Or):
        return any(matches(p, metadata) for p in f.parts)
    return not matches(f.part, metadata)


@dataclass(frozen=True)
class Selection:
    """Which items an operation applies to: modalities (None: all) and a metadata filter (None: all)."""

    modalities: tuple[str, ...] | None = None
    where: Filter | None = None


class Item(Protocol):
    """What :func:`select` reads of a stored item (a :class:`~crossmodal.stores.base.Record`)."""

    @property
    def modality(self) -> str: ...

    @property
    def metadata(self) -> Mapping[str, Any]: ...


def select(item: Item, selection: Selection | None) -> bool:
    """Whether ``selection`` picks ``item`` (the reference semantics for every store)."""
    if selection is None:
        return True
    if selection.modalities is not None and item.modality not in selection.modalities:
        return False
    return matches(selection.where, item.metadata)
