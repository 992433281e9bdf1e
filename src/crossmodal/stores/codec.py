"""Text that is not valid Unicode, in a form every store keeps: file names whose bytes are not UTF-8.

Python reads such a name with its undecodable bytes as lone surrogates
(``os.fsdecode``: byte 0xff becomes U+DCFF), so the name opens and compares
like any other. No store takes lone surrogates: SQLite and PostgreSQL TEXT
want valid UTF-8, and JSON payloads (Qdrant, JSONB) refuse unpaired
surrogate escapes. So the collection hands every store text in which each
surrogate U+D800..U+DFFF is written as U+FDD0 followed by its four hex
digits, and U+FDD0 itself as U+FDD0 U+FDD0, and decodes what it reads back.

U+FDD0 is a Unicode noncharacter (reserved for uses like this one, never
part of real text), the form is valid UTF-8 with no NUL, and it is
reversible for every string, so a reference read back is the very file
name that went in. Text without surrogates or U+FDD0 (all ordinary text) is
stored exactly as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .base import Record
from .filters import And, Cond, Filter, Not, Or

__all__ = ["ESCAPE", "decode_record", "decode_text", "encode_filter", "encode_record", "encode_text"]

ESCAPE = "\ufdd0"
_RAW = re.compile("[\ud800-\udfff\ufdd0]")
_CODED = re.compile("\ufdd0(\ufdd0|d[89a-f][0-9a-f]{2})")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return ESCAPE + (ESCAPE if char == ESCAPE else f"{ord(char):04x}")


def _unescaped(match: re.Match[str]) -> str:
    code = match.group(1)
    return ESCAPE if code == ESCAPE else chr(int(code, 16))


def encode_text(text: str) -> str:
    """``text`` in the stored form (itself, unless it holds a surrogate or U+FDD0)."""
    return _RAW.sub(_escaped, text) if _RAW.search(text) else text


def decode_text(text: str) -> str:
    """The text :func:`encode_text` was given."""
    return _CODED.sub(_unescaped, text) if ESCAPE in text else text


def _map_value(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(fn(v) if isinstance(v, str) else v for v in value)
    return value


def _touched(value: Any, probe: Any) -> bool:
    if isinstance(value, str):
        return bool(probe(value))
    return isinstance(value, (list, tuple)) and any(isinstance(v, str) and probe(v) for v in value)


def _map_metadata(metadata: Mapping[str, Any], fn: Any, probe: Any) -> Mapping[str, Any]:
    for k, v in metadata.items():  # (a loop: every search hit comes through here, and most touch nothing)
        if probe(k) or _touched(v, probe):
            return {fn(k): _map_value(v, fn) for k, v in metadata.items()}
    return metadata


def _map_record(r: Record, fn: Any, probe: Any) -> Record:
    text = r.text
    if not (probe(r.reference) or (text is not None and probe(text)) or probe(r.source)):
        metadata = _map_metadata(r.metadata, fn, probe)
        return r if metadata is r.metadata else replace(r, metadata=metadata)
    return replace(r, reference=fn(r.reference), text=None if text is None else fn(text), source=fn(r.source),
                   metadata=_map_metadata(r.metadata, fn, probe))


def encode_record(r: Record) -> Record:
    """``r`` with its reference, text, source and metadata in the stored form."""
    return _map_record(r, encode_text, _RAW.search)


def _has_escape(text: str) -> bool:
    return ESCAPE in text


def decode_record(r: Record) -> Record:
    """A stored record as it was given."""
    return _map_record(r, decode_text, _has_escape)


def encode_filter(f: Filter | None) -> Filter | None:
    """A filter whose keys and string values are in the stored form, so it matches what was stored."""
    if f is None:
        return None
    if isinstance(f, Cond):
        return Cond(encode_text(f.key), f.op, _map_value(f.value, encode_text))
    if isinstance(f, Not):
        return Not(encode_filter(f.part))  # type: ignore[arg-type]
    parts = tuple(encode_filter(p) for p in f.parts)
    return And(parts) if isinstance(f, And) else Or(parts)  # type: ignore[arg-type]
