"""crossmodal filters as Qdrant payload filters, with the exact semantics of :func:`~crossmodal.stores.filters.matches`.

Qdrant compares payload values with its own rules (integer match does not
find a float ``2020.0``, ranges are numeric only, numbers are 64-bit floats),
so the store does not filter the user's metadata directly. Each point also
carries a *filter view* of it, written by :func:`filter_view`::

    "f": {"<token of key>": {"s": [strings], "n": [numbers as floats], "b": [booleans], "e": true}}

one entry per key that holds a non-null value, split by kind, so that

* ``$eq``/``$in`` are a keyword match on ``s``, a boolean match on ``b`` and a
  one-point range on ``n`` (``2020 == 2020.0``; ``true`` is not ``1``);
* ``$gt`` & co. are ranges on ``n`` (a number never compares with a string);
* ``$exists`` is a match on ``e``; ``$ne``/``$nin`` are ``must_not``, which
  keeps points without the key, as the reference does.

Two cases Qdrant cannot decide exactly: ranges over strings (Qdrant has no
string range), and numbers beyond +-2**53, which a float cannot hold exactly.
For them :func:`translate` returns a *superset* filter (nothing that matches
is dropped) and a *subset* filter (everything kept matches); when the two
differ, the store runs the superset in Qdrant and checks each point with
:func:`matches` on the way out. ``Not`` swaps them, so the bounds stay sound
through any nesting.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from qdrant_client.http import models as qm

from ..filters import And, Cond, Filter, Not, Or, Selection, values_of

__all__ = ["Bounds", "filter_view", "has_big_numbers", "key_token", "translate", "view_field"]

_EXACT = 2**53
_SAFE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class _Everything:
    def __repr__(self) -> str:
        return "ALL"


class _Nothing:
    def __repr__(self) -> str:
        return "NONE"


ALL = _Everything()
NONE = _Nothing()
Part = Union[qm.Filter, qm.FieldCondition, _Everything, _Nothing]


def key_token(key: str) -> str:
    """A metadata key as a Qdrant path segment: ``k_<key>`` for plain keys, ``h_<digest>`` for the rest."""
    if _SAFE.match(key):
        return "k_" + key
    return "h_" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def view_field(key: str, part: str) -> str:
    return f"f.{key_token(key)}.{part}"


def filter_view(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``f`` payload of an item (see the module docstring)."""
    view: dict[str, dict[str, Any]] = {}
    for key in metadata:
        values = values_of(metadata, key)
        if not values:
            continue
        entry: dict[str, Any] = {"e": True}
        strings = [v for v in values if isinstance(v, str)]
        bools = [v for v in values if isinstance(v, bool)]
        numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if strings:
            entry["s"] = strings
        if bools:
            entry["b"] = bools
        if numbers:
            entry["n"] = numbers
        view[key_token(key)] = entry
    return view


def has_big_numbers(metadata: Mapping[str, Any]) -> bool:
    """Whether some integer is beyond what a float holds exactly (then numeric filters are checked in Python)."""
    for key in metadata:
        for v in values_of(metadata, key):
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > _EXACT:
                return True
    return False


def _exact_number(v: Any) -> bool:
    return isinstance(v, float) or abs(v) <= _EXACT


# -- combinators over ALL / NONE -------------------------------------------------------------------------------------


def _and(parts: list[Part]) -> Part:
    if any(p is NONE for p in parts):
        return NONE
    kept = [p for p in parts if p is not ALL]
    if not kept:
        return ALL
    return kept[0] if len(kept) == 1 else qm.Filter(must=kept)  # type: ignore[arg-type]


def _or(parts: list[Part]) -> Part:
    if any(p is ALL for p in parts):
        return ALL
    kept = [p for p in parts if p is not NONE]
    if not kept:
        return NONE  # an empty `should` would match everything in Qdrant
    return kept[0] if len(kept) == 1 else qm.Filter(should=kept)  # type: ignore[arg-type]


def _not(part: Part) -> Part:
    if part is ALL:
        return NONE
    if part is NONE:
        return ALL
    return qm.Filter(must_not=[part])  # type: ignore[list-item]


@dataclass(frozen=True)
class Bounds:
    """A filter's superset and subset in Qdrant terms; ``exact`` when they are the same set."""

    superset: Part
    subset: Part
    exact: bool


def _range(field: str, op: str, value: float) -> qm.FieldCondition:
    return qm.FieldCondition(key=field, range=qm.Range(**{op: value}))


def _membership(key: str, values: tuple[Any, ...], numbers_exact: bool) -> Bounds:
    strings = [v for v in values if isinstance(v, str)]
    bools = sorted({v for v in values if isinstance(v, bool)})
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    sure: list[Part] = []
    if strings:
        match = qm.MatchValue(value=strings[0]) if len(strings) == 1 else qm.MatchAny(any=strings)
        sure.append(qm.FieldCondition(key=view_field(key, "s"), match=match))
    for b in bools:
        sure.append(qm.FieldCondition(key=view_field(key, "b"), match=qm.MatchValue(value=b)))
    ranges: list[Part] = [qm.FieldCondition(key=view_field(key, "n"), range=qm.Range(gte=float(n), lte=float(n)))
                          for n in dict.fromkeys(numbers)]
    exact = numbers_exact and all(_exact_number(n) for n in numbers)
    superset = _or(sure + ranges)
    if exact:
        return Bounds(superset, superset, True)
    return Bounds(superset, _or(sure), False)


def _compare(key: str, op: str, value: Any, numbers_exact: bool) -> Bounds:
    if isinstance(value, str):  # Qdrant has no string ranges: every point with a string value is a candidate
        return Bounds(_not(qm.FieldCondition(key=view_field(key, "s"), is_empty=True)), NONE, False)
    field = view_field(key, "n")
    if numbers_exact and _exact_number(value):
        cond = _range(field, op, float(value))
        return Bounds(cond, cond, True)
    # rounding to float is monotonic: x >= v implies float(x) >= float(v); float(x) > float(v) implies x > v
    loose = {"gt": "gte", "gte": "gte", "lt": "lte", "lte": "lte"}[op]
    strict = {"gt": "gt", "gte": "gt", "lt": "lt", "lte": "lt"}[op]
    return Bounds(_range(field, loose, float(value)), _range(field, strict, float(value)), False)


def _translate(f: Filter, numbers_exact: bool) -> Bounds:
    if isinstance(f, Cond):
        if f.op == "exists":
            has = qm.FieldCondition(key=view_field(f.key, "e"), match=qm.MatchValue(value=True))
            part = has if f.value else _not(has)
            return Bounds(part, part, True)
        if f.op in ("eq", "ne"):
            b = _membership(f.key, (f.value,), numbers_exact)
        elif f.op in ("in", "nin"):
            b = _membership(f.key, f.value, numbers_exact)
        else:
            return _compare(f.key, f.op, f.value, numbers_exact)
        if f.op in ("ne", "nin"):
            return Bounds(_not(b.subset), _not(b.superset), b.exact)
        return b
    if isinstance(f, Not):
        b = _translate(f.part, numbers_exact)
        return Bounds(_not(b.subset), _not(b.superset), b.exact)
    parts = [_translate(p, numbers_exact) for p in f.parts]
    combine = _and if isinstance(f, And) else _or
    assert isinstance(f, (And, Or))
    return Bounds(combine([p.superset for p in parts]), combine([p.subset for p in parts]),
                  all(p.exact for p in parts))


def translate(selection: Selection | None, *, numbers_exact: bool = True) -> Bounds:
    """The Qdrant bounds of a selection (modalities + filter).

    ``numbers_exact`` is False once the collection holds an integer beyond
    +-2**53: numeric conditions are then decided in Python.
    """
    if selection is None:
        return Bounds(ALL, ALL, True)
    modal: Part = ALL
    if selection.modalities is not None:
        modal = qm.FieldCondition(key="modality", match=qm.MatchAny(any=list(selection.modalities)))
    if selection.where is None:
        return Bounds(modal, modal, True)
    b = _translate(selection.where, numbers_exact)
    return Bounds(_and([modal, b.superset]), _and([modal, b.subset]), b.exact)


def as_filter(part: Part) -> qm.Filter | None:
    """A part as the ``Filter`` Qdrant calls take (None: everything). NONE has no Qdrant form; callers check it."""
    if part is ALL:
        return None
    assert part is not NONE
    return part if isinstance(part, qm.Filter) else qm.Filter(must=[part])  # type: ignore[list-item]
