"""``--where EXPR``: the command line's short form of the metadata filter language.

One expression is ``KEY OP VALUE``::

    key=value      equal; a value that spells a number or true/false also matches that number or boolean
    key!=value     not equal (also true where the key is missing)
    key=[a,b]      any of; key!=[a,b]: none of
    key>n key>=n key<n key<=n
                   n is a number, an ISO date or time (2024-06-01, 2024-06-01T12:00) or a "quoted" text
    key="text"     exactly this text (never a number or boolean)

Anything else is refused with :class:`ConfigError` naming the expression, so a
typo such as ``year>>2020`` never becomes a filter that silently matches nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import ConfigError
from ..stores.filters import parse_where

__all__ = ["WHERE_SYNTAX", "parse_where_option"]

#: the accepted forms, shown in every error
WHERE_SYNTAX = ('key=value, key!=value, key=[a,b], key!=[a,b], key>n, key>=n, key<n, key<=n '
                '(n: a number, an ISO date such as 2024-06-01, or a "quoted" text), key="exact text"')

_OPS = ("!=", ">=", "<=", "=", ">", "<")  # longest first
_RANGE = {">=": "$gte", "<=": "$lte", ">": "$gt", "<": "$lt"}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")


def _refuse(expr: str, why: str) -> ConfigError:
    return ConfigError(f"--where {expr!r}: {why}; accepted forms: {WHERE_SYNTAX}")


def _number(text: str) -> int | float | None:
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


def _check_start(expr: str, text: str) -> None:
    if text[0] in "=!<>":
        raise _refuse(expr, f"the value {text!r} starts with {text[0]!r} (a doubled operator?)")


def _quoted(expr: str, text: str) -> str | None:
    """The text of a ``"quoted"`` value (JSON escapes), None when ``text`` is not quoted."""
    if not text.startswith('"'):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, str):
        raise _refuse(expr, f"{text} is not one complete \"quoted\" text (a quote inside is written \\\")")
    return value


def _meanings(expr: str, text: str) -> list[Any]:
    """What one equality value may mean: the text, plus the number or boolean it spells."""
    if not text:
        raise _refuse(expr, 'the value is missing (for an empty text write key="")')
    quoted = _quoted(expr, text)
    if quoted is not None:
        return [quoted]
    _check_start(expr, text)
    if text.startswith("[") or text.endswith("]"):
        raise _refuse(expr, f"the value {text!r} has an unbalanced bracket; a list is written [a,b]")
    if text.lower() in ("true", "false"):
        return [text, text.lower() == "true"]
    number = _number(text)
    return [text] if number is None else [text, number]


def _list(expr: str, text: str) -> list[Any]:
    inner = text[1:-1]
    values, current, quoted = [], "", False
    for ch in inner:  # split on the commas outside "quotes"
        if ch == '"' and not current.endswith("\\"):
            quoted = not quoted
        if ch == "," and not quoted:
            values.append(current.strip())
            current = ""
        else:
            current += ch
    values.append(current.strip())
    if not any(values):
        raise _refuse(expr, "the list is empty")
    if not all(values):
        raise _refuse(expr, f"the list {text} has an empty element")
    return [m for v in values for m in _meanings(expr, v)]


def _bound(expr: str, key: str, op: str, text: str) -> int | float | str:
    """A range's bound: a number, an ISO date/time, or a quoted text."""
    if not text:
        raise _refuse(expr, f"{op} needs a number after it")
    _check_start(expr, text)
    quoted = _quoted(expr, text)
    if quoted is not None:
        return quoted
    number = _number(text)
    if number is not None:
        return number
    if _ISO.fullmatch(text):
        return text
    raise _refuse(expr, f"{op} compares numbers, and {text!r} is not a number or an ISO date "
                        f'(to compare texts, quote it: {key}{op}"{text}")')


def _one(expr: str) -> dict[str, Any]:
    cut = next((i for i, ch in enumerate(expr) if ch in "=!<>"), None)
    if cut is None:
        raise _refuse(expr, "there is no operator")
    key, rest = expr[:cut].strip(), expr[cut:]
    op = next((o for o in _OPS if rest.startswith(o)), None)
    if op is None:
        raise _refuse(expr, f"{rest[:2]!r} is not an operator")
    if not key:
        raise _refuse(expr, "the key is missing")
    if key.startswith("$"):
        raise _refuse(expr, f"keys cannot start with '$' ({key!r}); --filter JSON takes the operators")
    raw = rest[len(op):].strip()
    if op in _RANGE:
        return {key: {_RANGE[op]: _bound(expr, key, op, raw)}}
    if raw.startswith("[") and raw.endswith("]") and len(raw) >= 2:
        values = _list(expr, raw)
        return {key: {"$in" if op == "=" else "$nin": values}}
    options = _meanings(expr, raw)
    if op == "!=":
        return {key: {"$nin": options}}
    return {key: options[0] if len(options) == 1 else {"$in": options}}


def parse_where_option(exprs: tuple[str, ...] | list[str], filter_json: str | None = None) -> dict[str, Any] | None:
    """``--where`` expressions (ANDed) plus ``--filter JSON`` -> one filter dict (None when there is none).

    Every expression is checked against the grammar in the module docstring and
    the result against the filter language, so a bad filter fails before any
    store is opened.
    """
    parts = [_one(expr) for expr in exprs]
    if filter_json:
        try:
            parts.append(json.loads(filter_json))
        except ValueError as exc:
            raise ConfigError(f"--filter is not JSON: {exc}") from exc
    if not parts:
        return None
    where = parts[0] if len(parts) == 1 else {"$and": parts}
    parse_where(where)
    return where
