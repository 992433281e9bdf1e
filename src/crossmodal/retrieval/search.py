"""``Collection.search(using=..., rerank=...)``: dense, keyword, sparse or hybrid search, optionally reranked.

* ``dense``: the query's vector against the items' vectors (cosine); what a
  search has always been.
* ``keyword``: BM25 over each item's keyword terms (its text, a pair's caption,
  the words of its file name and folders, and the metadata values the
  collection marks as text; see :mod:`crossmodal.stores.keywords`). It needs a
  text: ``text=`` alone, the text of an image+text query, or ``keywords=``
  (which also lets a hybrid search pair an image or a vector with words).
* ``sparse``: the dot product of the query text's sparse vector with the
  items' (ids shared), for a model with a sparse output (BGE-M3); see
  :mod:`crossmodal.retrieval.tokens`.
* ``hybrid``: dense, keyword and (when the model has it) sparse, each asked
  for ``candidates`` items (``max(3 * top_k, 50)``), fused by reciprocal rank
  fusion with k = 60 (or as :class:`~crossmodal.retrieval.fusion.Fusion` says).

``rerank="multivector"`` takes the best ``candidates`` of any of these and
orders them by MaxSim between the query text's multi-vector and each item's
(items without one keep their order, after those that have one).

Modality and metadata filters apply inside every signal, before ranking, so
a filtered hybrid search fuses filtered lists. Hits of everything but a plain
dense search carry ``signals``: each signal that returned the item, with its
score there (cosine for ``dense``, BM25 for ``keyword``, the dot product for
``sparse``, MaxSim for ``multivector``); ``score`` is the final one (fused, or
MaxSim when reranked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..stores.base import Hit, Record, Selection
from ..stores.keywords import query_terms
from .fusion import Fusion, fuse
from .tokens import MultivectorOutput, SparseOutput, check_sparse

if TYPE_CHECKING:
    import numpy as np

__all__ = ["RERANK", "USING", "candidate_count", "search_signals"]

USING = ("dense", "keyword", "sparse", "hybrid")
RERANK = ("multivector",)
MAX_CANDIDATES = 10_000

Found = Sequence[tuple[Record, float]]


def candidate_count(top_k: int) -> int:
    return min(MAX_CANDIDATES, max(3 * top_k, 50))


def _keyword_text(text: str | None, pair: Any) -> str | None:
    if text is not None:
        return text
    if isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[1], str):
        return pair[1]
    return None


def _token_model(backend: Any, model: Any, protocol: type, what: str) -> Any:
    if not getattr(backend, "holds_token_vectors", False):
        raise ConfigError(f"{what} is not available in collection {backend.info.name!r}: its store keeps no sparse "
                          "vectors or multi-vectors for it (a Qdrant collection created before they were kept; copy it "
                          "into a new collection with `crossmodal store copy` to add them)")
    if model is None or not isinstance(model, protocol):
        name = getattr(model, "name", None) or "none"
        output = "sparse" if protocol is SparseOutput else "multi-vector"
        raise ConfigError(f"{what} needs a model with a {output} output (such as BGE-M3); this collection's model "
                          f"({name}) has none")
    return model


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
    dense_vector: Callable[[], np.ndarray],
    hit: Callable[[Record, float], Hit],
    keywords: str | None = None,
    fusion: Fusion | None = None,
    rerank: str | None = None,
    model: Any = None,
) -> list[Hit]:
    """The ``top_k`` best hits of a search that is not a plain dense one."""
    if using not in USING:
        raise ConfigError(f"using must be one of {', '.join(USING)}, got {using!r}")
    if rerank is not None and rerank not in RERANK:
        raise ConfigError(f"rerank must be None or one of {', '.join(RERANK)}, got {rerank!r}")
    words = keywords if keywords is not None else _keyword_text(text, pair)
    if using != "dense" or rerank is not None:
        if like is not None and keywords is None and using != "dense":
            raise ConfigError(f"a {using} search needs a text query; like= searches by vector only (using='dense')")
        if words is None and (using != "dense" or rerank is not None):
            raise ConfigError(f"a {using} search{' reranked by multivector' if rerank else ''} needs a text: give "
                              "text= (alone, or with image= for an image+text query), or keywords=")
        if not isinstance(words, str):
            raise ConfigError(f"text must be a string, got {type(words).__name__}")
    assert words is not None
    n = candidate_count(top_k) if (using == "hybrid" or rerank) else top_k
    lists: dict[str, Found] = {}
    if using in ("dense", "hybrid"):
        lists["dense"] = backend.query(dense_vector(), n, selection)
    if using in ("keyword", "hybrid"):
        terms = query_terms(words)
        lists["keyword"] = backend.keyword(terms, n, selection) if terms else []
    sparse_model = model if isinstance(model, SparseOutput) and getattr(backend, "holds_token_vectors", False) \
        else None
    if using == "sparse":
        sparse_model = _token_model(backend, model, SparseOutput, "sparse search")
    if using in ("sparse", "hybrid") and sparse_model is not None:
        query = check_sparse(sparse_model.embed_sparse([words])[0], "the query's sparse vector")
        lists["sparse"] = backend.sparse_query(query, n, selection)
    ranked = _fused(lists, n, fusion) if len(lists) > 1 else \
        [(r, float(s), {name: float(s)}) for name, found in lists.items() for r, s in found]
    if rerank is not None:
        multi_model = _token_model(backend, model, MultivectorOutput, "rerank='multivector'")
        ranked = _reranked(backend, ranked, multi_model.embed_multivectors([words])[0])
    return [replace(hit(r, s), signals=signals) for r, s, signals in ranked[:top_k]]  # Hits for the final few only


Ranked = list[tuple[Record, float, dict[str, float]]]


def _fused(lists: dict[str, Found], n: int, fusion: Fusion | None) -> Ranked:
    records: dict[str, Record] = {}
    scores: dict[str, dict[str, float]] = {}
    for signal, found in lists.items():
        for r, s in found:
            records.setdefault(r.id, r)
            scores.setdefault(r.id, {})[signal] = float(s)
    fused = fuse({signal: [(r.id, s) for r, s in found] for signal, found in lists.items()}, fusion)
    return [(records[i], s, scores[i]) for i, s in fused[:n]]


def _reranked(backend: Any, ranked: Ranked, query: np.ndarray) -> Ranked:
    stored = backend.maxsim(query, [r.id for r, _, _ in ranked])
    scored = []
    for order, (r, s, signals) in enumerate(ranked):
        if r.id in stored:
            m = float(stored[r.id])
            scored.append((0, -m, r.id, order, (r, m, {**signals, "multivector": m})))
        else:
            scored.append((1, 0.0, "", order, (r, s, signals)))
    scored.sort(key=lambda t: t[:4])
    return [t[4] for t in scored]
