"""Fusing ranked lists of several signals into one.

Reciprocal rank fusion (the default; Cormack, Clarke and Büttcher, 2009):
``score(d) = Σ_s w_s / (k + rank_s(d))``, ranks counted from 1 in each signal's
list, ``k = 60`` (the paper's constant, as Elasticsearch and LanceDB use it;
Qdrant's built-in RRF counts ranks from 0 with k = 2, so its numbers differ).
An item a signal did not return adds nothing for that signal.

Weighted fusion (``method="weighted"``) is BGE-M3's ``compute_score``:
``Σ_s w_s · score_s(d) / Σ_s w_s`` over the raw scores, a signal that did not
return the item counting 0. It suits signals on similar scales (dense cosine,
sparse and multi-vector scores of one model); BM25 scores are unbounded, so
keyword search is best fused by rank.

Ties are broken by id, as everywhere in crossmodal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["RRF_K", "Fusion", "fuse"]

RRF_K = 60


@dataclass(frozen=True)
class Fusion:
    """How ``using="hybrid"`` combines its signals: ``"rrf"`` (rank constant ``k``) or ``"weighted"``;
    ``weights`` per signal name (missing: 1.0)."""

    method: str = "rrf"
    k: int = RRF_K
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "weighted"):
            raise ConfigError(f"fusion method must be 'rrf' or 'weighted', got {self.method!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 0:
            raise ConfigError(f"the RRF constant k must be a non-negative integer, got {self.k!r}")
        for name, w in self.weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
                raise ConfigError(f"fusion weight of {name!r} must be a number >= 0, got {w!r}")
        object.__setattr__(self, "weights", dict(self.weights))

    def weight(self, signal: str) -> float:
        return float(self.weights.get(signal, 1.0))


def fuse(ranked: Mapping[str, Sequence[tuple[str, float]]], fusion: Fusion | None = None) -> list[tuple[str, float]]:
    """One list of (id, fused score), best first (ties by id), from each signal's (id, score) list, best first."""
    fusion = fusion or Fusion()
    total: dict[str, float] = {}
    if fusion.method == "rrf":
        for signal, hits in ranked.items():
            w = fusion.weight(signal)
            for rank, (item, _) in enumerate(hits, start=1):
                total[item] = total.get(item, 0.0) + w / (fusion.k + rank)
    else:
        norm = sum(fusion.weight(s) for s in ranked) or 1.0
        for signal, hits in ranked.items():
            w = fusion.weight(signal)
            for item, score in hits:
                total[item] = total.get(item, 0.0) + w * float(score) / norm
    return sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))


def describe(fusion: Fusion) -> dict[str, Any]:
    return {"method": fusion.method, "k": fusion.k, "weights": dict(fusion.weights)}
