"""Random metadata and random filters at the edges of the filter semantics, for stores that translate filters.

The values mix the cases a translation can get wrong: ints and floats that
are equal (2020 vs 2020.0), integers beyond what a float holds (2**53 + 1),
booleans next to 0 and 1, strings that sort differently by code point than
by locale, lists (any element matches, an empty list is no value), nulls, and keys
that need quoting. The expected answer always comes from
:func:`crossmodal.stores.filters.matches`.
"""

from __future__ import annotations

import random
from typing import Any

KEYS = ["n", "s", "tags", "flag", "odd key.with \"quotes\"", "ключ"]
NUMBERS = [0, 1, -1, 2, 2.0, 0.5, -1.25, 1e-05, 3, 2020, 2020.0, 2**53, 2**53 + 1, 2**60, float(2**60), 1e300]
STRINGS = ["", "a", "b", "B", "é", "z", "😀", "\ufb01", "2024-01-01", "2024-12-31", "x y"]
BOOLS = [True, False]


def scalar(rng: random.Random) -> Any:
    pool = rng.choice([NUMBERS, STRINGS, BOOLS])
    return rng.choice(pool)


def metadata(rng: random.Random) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key in KEYS:
        roll = rng.random()
        if roll < 0.25:
            continue  # missing
        if roll < 0.32:
            meta[key] = None
        elif roll < 0.55:
            meta[key] = [scalar(rng) for _ in range(rng.randint(0, 3))]
        else:
            meta[key] = scalar(rng)
    return meta


def _cond(rng: random.Random) -> dict[str, Any]:
    key = rng.choice(KEYS)
    op = rng.choice(["eq", "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"])
    if op == "eq":
        return {key: scalar(rng)}
    if op == "exists":
        return {key: {"$exists": rng.random() < 0.5}}
    if op in ("in", "nin"):
        return {key: {"$" + op: [scalar(rng) for _ in range(rng.randint(1, 3))]}}
    if op == "ne":
        return {key: {"$ne": scalar(rng)}}
    value = rng.choice(NUMBERS + STRINGS)  # ranges take numbers or strings, never booleans
    return {key: {"$" + op: value}}


def where(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth >= 2 or roll < 0.55:
        return _cond(rng)
    if roll < 0.7:
        return {"$not": where(rng, depth + 1)}
    op = "$and" if roll < 0.85 else "$or"
    return {op: [where(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
