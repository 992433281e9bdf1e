"""Where a keyword query matched a text: character spans to highlight (the search page, ``--json``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..stores.keywords import CJK, query_terms, words

__all__ = ["highlight_spans"]

_WORD = re.compile(r"[^\W_]+")


def _segments(word: str, start: int) -> Iterable[tuple[int, str, bool]]:
    """(offset, piece, is_cjk) of a word split where it changes between CJK and other scripts."""
    at = 0
    for m in CJK.finditer(word):
        if m.start() > at:
            yield start + at, word[at:m.start()], False
        yield start + m.start(), m.group(), True
        at = m.end()
    if at < len(word):
        yield start + at, word[at:], False


def highlight_spans(text: str, query: str | Iterable[str]) -> list[tuple[int, int]]:
    """``(start, end)`` offsets into ``text`` of the words (in Chinese and similar scripts: the characters) that
    match a term of ``query`` (a query text, or its terms), in order, merged where they touch."""
    terms = set(query_terms(query) if isinstance(query, str) else query)
    if not terms or not text:
        return []
    spans: list[tuple[int, int]] = []
    for m in _WORD.finditer(text):
        for offset, piece, cjk in _segments(m.group(), m.start()):
            if not cjk:
                if terms & set(words(piece)):
                    spans.append((offset, offset + len(piece)))
                continue
            for i in range(len(piece)):
                for size in (1, 2):
                    if i + size <= len(piece) and piece[i:i + size] in terms:
                        spans.append((offset + i, offset + i + size))
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged
