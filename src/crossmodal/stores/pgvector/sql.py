"""The SQL side of the pgvector store: metadata as exact JSONB, filters as JSONB path predicates, COPY rows.

Filters. Each :class:`~crossmodal.stores.filters.Cond` becomes one
``metadata @? '<jsonpath>'`` predicate, and ``And``/``Or``/``Not`` become SQL
``AND``/``OR``/``NOT``. SQL/JSON path (lax mode) has exactly the semantics of
:func:`~crossmodal.stores.filters.matches`:

* ``$."key"[*]`` visits the value of a key, or each element of a list value
  (a missing key visits nothing, so ``$ne``/``$nin``, written as ``NOT`` of
  ``$eq``/``$in``, match items without the key);
* comparisons between a number and a string or a boolean are *unknown*, which
  a path filter treats as false (type-strict, ``true`` is not ``1``), numbers
  compare as exact numerics (``2020 == 2020.0``) and strings in code-point
  order, like Python;
* ``$exists`` is "some visited value is not null".

``jsonb_path_ops`` GIN indexes serve the equality predicates.

Numbers. JSONB keeps numbers as exact decimals, so a float is written with
enough digits to be compared with integers exactly as Python compares them
(see :func:`dump_float`), and read back as the same float.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...errors import InputError
from ..base import Record
from ..filters import And, Cond, Filter, Not, Or, Selection

__all__ = ["check_storable", "dump_float", "dump_metadata", "filter_sql", "jsonpath_literal", "quoted", "where_sql"]

_EXACT = 2**53  # floats with a larger magnitude are integers; write all their digits


def dump_float(value: float) -> str:
    """A JSON number for a float that JSONB keeps distinct from an int and that compares like Python does.

    Below 2**53 the shortest round-trip form (``repr``) is never on the other
    side of an integer from the float's true value, so numeric comparisons
    agree with Python's exact int/float comparisons. Above, a float *is* an
    integer: all its digits are written. A ``.0`` keeps it a float on the way
    back.
    """
    if abs(value) >= _EXACT:
        return f"{int(value)}.0"
    text = repr(value)
    return text if ("." in text or "e" in text) else text + ".0"


def _dump_scalar(value: Any, ensure_ascii: bool = False) -> str:
    """A metadata scalar as JSON, floats written by :func:`dump_float`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return dump_float(value)
    return json.dumps(value, ensure_ascii=ensure_ascii)


def _has_float(metadata: Mapping[str, Any]) -> bool:
    for value in metadata.values():
        if isinstance(value, float) or (isinstance(value, (list, tuple)) and any(isinstance(v, float) for v in value)):
            return True
    return False


def dump_metadata(metadata: Mapping[str, Any]) -> str:
    """Metadata (already validated: scalars and lists of scalars) as JSON text for JSONB."""
    if not _has_float(metadata):  # nothing to write specially: the C encoder
        return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
    parts = []
    for key, value in metadata.items():
        if isinstance(value, (list, tuple)):
            text = "[" + ",".join(_dump_scalar(v) for v in value) + "]"
        else:
            text = _dump_scalar(value)
        parts.append(json.dumps(key, ensure_ascii=False) + ":" + text)
    return "{" + ",".join(parts) + "}"


def check_storable(record: Record) -> None:
    """PostgreSQL text cannot hold NUL characters; say which item and field has one."""
    fields = {"id": record.id, "reference": record.reference, "text": record.text or "",
              "content_hash": record.content_hash, "source": record.source, "stamp": record.stamp}
    for name, value in fields.items():
        if "\x00" in value:
            raise InputError(f"item {record.id!r}: its {name} contains a NUL character, which PostgreSQL cannot "
                             "store", input=record.id)
    for key, value in record.metadata.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if "\x00" in key or any(isinstance(v, str) and "\x00" in v for v in values):
            raise InputError(f"item {record.id!r}: metadata {key!r} contains a NUL character, which PostgreSQL "
                             "cannot store", input=record.id)


# -- filters -------------------------------------------------------------------------------------------------------


def jsonpath_literal(value: Any) -> str:
    """A scalar as a SQL/JSON path literal: JSON, which path syntax accepts, in ASCII (``\\uXXXX`` escapes,
    surrogate pairs for astral characters)."""
    return _dump_scalar(value, ensure_ascii=True)


_PATH_OPS = {"eq": "==", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _cond_path(cond: Cond) -> tuple[str, bool]:
    """The jsonpath of a condition's positive form, and whether the condition negates it."""
    key = "$." + json.dumps(cond.key) + "[*]"
    if cond.op == "exists":
        return f'{key} ? (@.type() != "null")', not cond.value
    if cond.op in ("in", "nin"):
        test = " || ".join(f"@ == {jsonpath_literal(v)}" for v in cond.value)
        return f"{key} ? ({test})", cond.op == "nin"
    if cond.op == "ne":
        return f"{key} ? (@ == {jsonpath_literal(cond.value)})", True
    return f"{key} ? (@ {_PATH_OPS[cond.op]} {jsonpath_literal(cond.value)})", False


def _storable(cond: Cond) -> Cond | bool:
    """``cond`` without NUL characters, which PostgreSQL text cannot hold (so no stored key or string has one):
    the same test on what can be stored, or its constant truth value.

    A key with a NUL is never present; a string with one never equals a stored string; and for a stored
    string ``x``, ``x > p + "\\0" + rest`` exactly when ``x > p`` (code-point order), and ``x < ...`` when ``x <= p``.
    """
    if "\x00" in cond.key:
        return cond.op in ("ne", "nin") or (cond.op == "exists" and cond.value is False)
    if cond.op in ("in", "nin"):
        kept = tuple(v for v in cond.value if not (isinstance(v, str) and "\x00" in v))
        if not kept:
            return cond.op == "nin"
        return Cond(cond.key, cond.op, kept) if len(kept) < len(cond.value) else cond
    if not (isinstance(cond.value, str) and "\x00" in cond.value):
        return cond
    if cond.op in ("eq", "ne"):
        return cond.op == "ne"
    prefix = cond.value.split("\x00", 1)[0]
    return Cond(cond.key, "gt" if cond.op in ("gt", "gte") else "lte", prefix)


def filter_sql(f: Filter) -> tuple[str, list[Any]]:
    """A boolean SQL expression over the ``metadata`` column for a filter tree, and its parameters.

    Only fixed SQL text is generated; every value travels as a parameter.
    """
    if isinstance(f, Cond):
        cond = _storable(f)
        if isinstance(cond, bool):
            return ("TRUE" if cond else "FALSE"), []
        path, negate = _cond_path(cond)
        return ("NOT (metadata @? %s::jsonpath)" if negate else "(metadata @? %s::jsonpath)"), [path]
    if isinstance(f, Not):
        inner, params = filter_sql(f.part)
        return f"(NOT {inner})", params
    assert isinstance(f, (And, Or))
    parts = [filter_sql(p) for p in f.parts]
    joiner = " AND " if isinstance(f, And) else " OR "
    return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]


def where_sql(selection: Selection | None) -> tuple[str, list[Any]]:
    """``WHERE``-ready conditions for a selection (``TRUE`` when it selects everything)."""
    if selection is None:
        return "TRUE", []
    conds: list[str] = []
    params: list[Any] = []
    if selection.modalities is not None:
        conds.append("modality = ANY(%s)")
        params.append(list(selection.modalities))
    if selection.where is not None:
        expr, fparams = filter_sql(selection.where)
        conds.append(expr)
        params += fparams
    if not conds:
        return "TRUE", []
    return " AND ".join(conds), params


def quoted(*names: str) -> str:
    """A (schema-qualified) SQL identifier."""
    return ".".join('"' + n.replace('"', '""') + '"' for n in names)
