"""What the CLI prints about names and texts: escaped for a terminal in human output, exact in JSON.

A file name may hold any character but ``/`` and NUL, and a stored text any
character at all. Printed raw, a newline forges an extra result line and an
escape sequence rewrites the terminal, so :func:`printable` writes control
characters (C0, DEL, C1), Unicode line separators and bidirectional
controls as escapes (``\\n``, ``\\x1b``, ``\\u202e``), and the undecodable
bytes of a file name that is not valid UTF-8 as ``\\xff``. Everything else,
backslashes included, is shown as it is.

:func:`json_line` keeps JSON exact: every string comes back, parsed, as it
was; lone surrogates (those undecodable bytes) are written as ``\\udcff``
escapes, so the line is valid UTF-8 too.
"""

from __future__ import annotations

import re
from typing import Any

from ..jsontext import dumps

__all__ = ["json_line", "printable"]

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a file name that is not UTF-8 (os.fsdecode's surrogate escape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: one line, no control sequences (see the module docstring)."""
    return _UNSAFE.sub(_escape, text)


def json_line(obj: Any) -> str:
    """``obj`` as one line of JSON, non-ASCII kept as it is, lone surrogates escaped."""
    return dumps(obj)
