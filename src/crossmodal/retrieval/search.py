"""``Collection.search(using=...)``: a dense, keyword or hybrid search of one collection.

* ``dense``: the query's vector against the items' vectors (cosine); what a
  search has always been.
* ``keyword``: BM25 over each item's keyword terms (its text, a pair's caption,
  the words of its file name and folders, and the metadata values the
  collection marks as text; see :mod:`crossmodal.stores.keywords`). It needs a
  text: ``text=`` alone, the text of an image+text query, or ``keywords=``
  (which also lets a hybrid search pair an image or a vector with words).
* ``hybrid``: dense and keyword, each asked for ``candidates`` items (default
  ``max(3 * top_k, 50)``), fused by reciprocal rank fusion with k = 60 (or as
  :class:`~crossmodal.retrieval.fusion.Fusion` says).

Modality and metadata filters apply inside every signal, before ranking, so
a filtered hybrid search fuses two filtered lists. Keyword and hybrid hits
carry ``signals``: each signal that returned the item, with its score there
(cosine for ``dense``, BM25 for ``keyword``); a hybrid hit's ``score`` is the
fused score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..stores.base import Hit, Record, Selection
from ..stores.keywords import query_terms
from .fusion import Fusion, fuse

if TYPE_CHECKING:
    import numpy as np

__all__ = ["USING", "candidate_count", "search_signals"]

USING = ("dense", "keyword", "hybrid")
MAX_CANDIDATES = 10_000


def candidate_count(top_k: int) -> int:
    return min(MAX_CANDIDATES, max(3 * top_k, 50))


def _keyword_text(text: str | None, pair: Any) -> str | None:
    if text is not None:
        return text
    if isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[1], str):
        return pair[1]
    return None


def search_signals(
    backend: Any,
    *,
    using: str,
    top_k: int,
    selection: Selection,
    text: str | None,
    image: Any,
    pair: Any,
    like: str | None,
    keywords: str | None = None,
    dense_vector: Callable[[], np.ndarray],
    hit: Callable[[Record, float], Hit],
    fusion: Fusion | None = None,
) -> list[Hit]:
    """The ``top_k`` best hits of a keyword or hybrid search (a dense one stays in ``Collection.search``)."""
    if using not in USING:
        raise ConfigError(f"using must be one of {', '.join(USING)}, got {using!r}")
    if like is not None and keywords is None:
        raise ConfigError(f"a {using} search needs a text query; like= searches by vector only (using='dense')")
    words = keywords if keywords is not None else _keyword_text(text, pair)
    if words is None:
        raise ConfigError(f"a {using} search needs a text: give text= (alone, or with image= for an image+text "
                          "query)")
    if not isinstance(words, str):
        raise ConfigError(f"text must be a string, got {type(words).__name__}")
    terms = query_terms(words)
    if using == "keyword":
        found = backend.keyword(terms, top_k, selection)
        return [_with_signals(hit(r, s), {"keyword": s}) for r, s in found]
    n = candidate_count(top_k)
    dense = backend.query(dense_vector(), n, selection)
    keyword = backend.keyword(terms, n, selection) if terms else []
    lists = {"dense": dense, "keyword": keyword}
    return _fused(lists, top_k, hit, fusion)


def _fused(lists: dict[str, Sequence[tuple[Record, float]]], top_k: int, hit: Callable[[Record, float], Hit],
           fusion: Fusion | None) -> list[Hit]:
    records: dict[str, Record] = {}
    scores: dict[str, dict[str, float]] = {}
    for signal, found in lists.items():
        for r, s in found:
            records.setdefault(r.id, r)
            scores.setdefault(r.id, {})[signal] = float(s)
    fused = fuse({signal: [(r.id, s) for r, s in found] for signal, found in lists.items()}, fusion)
    return [_with_signals(hit(records[i], s), scores[i]) for i, s in fused[:top_k]]


def _with_signals(h: Hit, signals: dict[str, float]) -> Hit:
    return replace(h, signals=signals)
