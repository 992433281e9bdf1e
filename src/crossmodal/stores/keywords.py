"""Keyword terms: what keyword search matches, computed the same way for every store.

Every store indexes the same terms, made here (so a query finds the same items
on SQLite, PostgreSQL and Qdrant, and no store's tokenizer decides it):

* text is NFKC-normalized, case-folded and stripped of accents (``Café`` ->
  ``cafe``); words are runs of letters and digits (``a-b``, ``foo:bar`` and
  ``_`` separate words, so no query is ever a syntax error);
* English words are folded by a light stemmer (plurals, ``-ing``, ``-ed``:
  ``cats`` and ``cat`` match, as do ``running`` and ``run``);
* Chinese, Japanese and Korean text, which is not split by spaces, is indexed
  as single characters and overlapping character pairs (``我爱北京`` ->
  ``我 爱 北 京 我爱 爱北 北京``); a query of two or more such characters
  matches by its pairs, one character by itself, so ``北京`` finds
  ``我爱北京天安门``;
* file names are split into words at separators, and words joined in
  camelCase or of letters and digits count whole and in parts
  (``IMG_2041-BerlinWall.jpg`` -> ``img 2041 berlinwall jpg berlin wall``);
  every folder of the path counts (``germany/trip/1.jpg`` has ``germany``).

An item's terms are its text (a text item's text, a pair's caption), the
words of its file name and folders (image and pair items, and text items read
from a file), and the values of the metadata keys the collection marks as text
(``text_keys``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["B", "CJK", "K1", "bm25_scores", "document_terms", "idf", "query_terms", "record_terms", "split_name", "stem",
           "words"]

_WORD = re.compile(r"[^\W_]+")
# Han (with extensions and compatibility ideographs), kana, Hangul: scripts written without spaces between words
CJK = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
                  r"\U00020000-\U0002ffff]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
_VOWELS = set("aeiouy")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def stem(word: str) -> str:
    """A light English stemmer: plurals, ``-ing`` and ``-ed`` (never shorter than three letters)."""
    if len(word) <= 3 or not word.isascii() or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zzes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix):
            base = word[: -len(suffix)]
            if len(base) >= 3 and _VOWELS & set(base):
                if len(base) >= 2 and base[-1] == base[-2] and base[-1] not in "lsz":
                    base = base[:-1]  # running -> run
                return base
    return word


def _cjk_terms(run: str, *, query: bool) -> list[str]:
    pairs = [run[i:i + 2] for i in range(len(run) - 1)]
    if query:
        return pairs or [run]
    return list(run) + pairs


def words(text: str, *, query: bool = False) -> list[str]:
    """The terms of a text, in order (repeated terms repeat: term frequency counts)."""
    out: list[str] = []
    for word in _WORD.findall(_fold(text)):
        start = 0
        for m in CJK.finditer(word):
            if m.start() > start:
                out.append(stem(word[start:m.start()]))
            out += _cjk_terms(m.group(), query=query)
            start = m.end()
        if start < len(word):
            out.append(stem(word[start:]))
    return out


def split_name(path: str) -> list[str]:
    """The terms of a path's folders and file name: its words, and the parts of words joined in camelCase or
    of letters and digits (``BerlinWall2`` gives ``berlinwall2``, then ``berlin wall 2``)."""
    if "://" in path:
        path = path.split("://", 1)[1]
    whole = words(path)
    seen = set(whole)
    return whole + [t for t in words(_CAMEL.sub(" ", path)) if t not in seen]


def _metadata_text(metadata: Mapping[str, Any], keys: Sequence[str]) -> Iterable[str]:
    for key in keys:
        value = metadata.get(key)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str):
                yield v
            elif v is not None and not isinstance(v, bool):
                yield str(v)


def document_terms(modality: str, reference: str, text: str | None, metadata: Mapping[str, Any],
                   text_keys: Sequence[str] = ()) -> list[str]:
    """The keyword terms of one item (see the module docstring)."""
    terms: list[str] = []
    if text:
        terms += words(text)
    if modality in ("image", "pair") or (text is not None and reference != text):
        terms += split_name(reference)
    for value in _metadata_text(metadata, text_keys):
        terms += words(value)
    return terms


def record_terms(record: Any, text_keys: Sequence[str] = ()) -> list[str]:
    """:func:`document_terms` of a stored :class:`~crossmodal.stores.base.Record`."""
    return document_terms(record.modality, record.reference, record.text, record.metadata, text_keys)


def query_terms(text: str) -> list[str]:
    """The distinct terms of a keyword query, in order."""
    return list(dict.fromkeys(words(text, query=True)))


# -- BM25, written plainly: the in-memory store's keyword search, and what the other stores are tested against ---------

#: BM25's term-frequency saturation and length normalization (the usual values; SQLite FTS5 fixes these too)
K1 = 1.2
B = 0.75


def idf(n_docs: int, n_with: int) -> float:
    """The IDF of a term in ``n_with`` of ``n_docs`` items: ``ln(1 + (N - n + 0.5) / (n + 0.5))`` (never negative)."""
    return math.log(1.0 + (n_docs - n_with + 0.5) / (n_with + 0.5))


def bm25_scores(query: Sequence[str], docs: Sequence[Sequence[str]]) -> list[float]:
    """BM25 of each document (a list of terms) for the distinct query terms; 0 where no term matches."""
    if not docs:
        return []
    counts = [Counter(d) for d in docs]
    avg = sum(len(d) for d in docs) / len(docs) or 1.0
    weights = {t: idf(len(docs), sum(1 for c in counts if t in c)) for t in dict.fromkeys(query)}
    scores = []
    for d, c in zip(docs, counts):
        norm = K1 * (1 - B + B * len(d) / avg)
        scores.append(sum(w * c[t] * (K1 + 1) / (c[t] + norm) for t, w in weights.items() if t in c))
    return scores
