"""JSON text that is always valid UTF-8, for the CLI's ``--json`` output and the server's responses.

A file name that is not valid UTF-8 reaches Python as a string with lone
surrogates (``os.fsdecode``'s escapes for the undecodable bytes). ``json.dumps``
with ``ensure_ascii=False`` writes them as they are, and encoding that text as
UTF-8 then fails. :func:`dumps` writes them as ``\\udcff`` escapes instead:
the text is valid UTF-8, every other character stays as it is, and a JSON
parser gives back exactly the string that was stored.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["dumps"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(obj, ensure_ascii=False, **kwargs)`` with lone surrogates escaped."""
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
