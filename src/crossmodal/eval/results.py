"""Evaluation results: CLIP_benchmark's JSON shape, plus crossmodal's own figures.

``to_dict()`` / ``to_json()`` give::

    {"dataset": "flickr30k_test_karpathy", "model": "openai/clip-vit-base-patch32",
     "task": "zeroshot_retrieval",
     "metrics": {"image_retrieval_recall@1": 0.588, ..., "text_retrieval_recall@10": 0.982},
     "mode": "exact", "runtime": "onnx", "dim": 512, "bytes_per_item": 2048, "images": 1000, "texts": 5000,
     "seconds": 61.2, "images_per_second": 40.1, "texts_per_second": 390.5, "index": "exact", ...}

``metrics`` holds CLIP_benchmark's keys (``image_retrieval_recall@k`` is
text -> image; ``acc1``, ``acc5``, ``mean_per_class_recall`` for zero-shot),
always measured with exact dot products: the model's own accuracy. A run
through a collection adds ``collection``: the same metrics measured through
the store's search, the recall lost to the index, and the index's own recall
against exact search. The JSON is strict: a metric that is undefined (acc5
under 5 classes, which CLIP_benchmark writes as a bare ``NaN``) is ``null``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import recall_at_k

__all__ = ["CollectionReport", "RetrievalResult", "ZeroshotResult", "format_table", "strict"]


def strict(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (so ``json.dumps(allow_nan=False)`` accepts it)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, np.generic):
        return strict(value.item())
    return value


def _json(data: dict[str, Any], indent: int | None) -> str:
    return json.dumps(strict(data), indent=indent, ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True, eq=False)
class CollectionReport:
    """The same evaluation run through a collection's search (see :func:`crossmodal.eval.evaluate_retrieval`)."""

    store: str  # the store's kind: embedded, memory, postgresql, qdrant
    index: str  # how that store searched: e.g. "embedded (HNSW above 100 items per modality)"
    metrics: dict[str, float]
    recall_lost: dict[str, float]  # model's own metric minus the collection's, per key
    index_recall: dict[str, float]  # "text_to_image@k": share of exact top-k also in the collection's top-k
    seconds: float
    queries_per_second: float
    text_to_image_ranks: np.ndarray = field(repr=False)  # rank of each caption's image; len(images) when not returned
    image_to_text_ranks: np.ndarray = field(repr=False)
    top_k: int = 10

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "index": self.index, "metrics": dict(self.metrics),
                "recall_lost": dict(self.recall_lost), "index_recall": dict(self.index_recall),
                "seconds": self.seconds, "queries_per_second": self.queries_per_second, "top_k": self.top_k}


@dataclass(frozen=True, eq=False)
class RetrievalResult:
    """Text -> image and image -> text recall@k of one model on one dataset."""

    dataset: str
    model: str
    mode: str
    runtime: str
    dim: int
    images: int
    texts: int
    k: tuple[int, ...]
    metrics: dict[str, float]
    seconds: float
    images_per_second: float
    texts_per_second: float
    text_to_image_ranks: np.ndarray = field(repr=False)  # 0-based rank of each caption's image among all images
    image_to_text_ranks: np.ndarray = field(repr=False)  # 0-based rank of each image's best caption
    space: dict[str, Any] = field(default_factory=dict, repr=False)
    collection: CollectionReport | None = None
    task = "zeroshot_retrieval"

    @property
    def bytes_per_item(self) -> int:
        """Bytes of one stored float32 vector."""
        return 4 * self.dim

    def recall_curve(self, direction: str, ks: range | list[int] | None = None, *, through_collection: bool = False
                     ) -> tuple[list[int], list[float]]:
        """(k values, recall@k) for ``"text_to_image"`` or ``"image_to_text"``, for plotting."""
        if direction not in ("text_to_image", "image_to_text"):
            raise ValueError(f"direction must be text_to_image or image_to_text, got {direction!r}")
        source: Any = self.collection if through_collection else self
        if source is None:
            raise ValueError("this result was not measured through a collection")
        ranks = getattr(source, f"{direction}_ranks")
        top = self.collection.top_k if through_collection and self.collection is not None else max(self.k)
        ks = list(ks) if ks is not None else list(range(1, top + 1))
        return ks, [recall_at_k(ranks, k) for k in ks]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset, "model": self.model, "task": self.task, "metrics": dict(self.metrics),
            "mode": self.mode, "runtime": self.runtime, "dim": self.dim, "bytes_per_item": self.bytes_per_item,
            "images": self.images, "texts": self.texts, "seconds": self.seconds,
            "images_per_second": self.images_per_second, "texts_per_second": self.texts_per_second,
            "index": "exact" if self.collection is None else self.collection.index, "space": dict(self.space),
        }
        if self.collection is not None:
            out["collection"] = self.collection.to_dict()
        return out

    def to_json(self, *, indent: int | None = 2) -> str:
        """Strict JSON (undefined metrics are null)."""
        return _json(self.to_dict(), indent)


@dataclass(frozen=True, eq=False)
class ZeroshotResult:
    """Zero-shot classification accuracy of one model on one dataset."""

    dataset: str
    model: str
    mode: str
    runtime: str
    dim: int
    images: int
    classes: int
    templates: int
    metrics: dict[str, float]
    seconds: float
    images_per_second: float
    texts_per_second: float
    ranks: np.ndarray = field(repr=False)  # 0-based rank of each image's class among all classes
    labels: np.ndarray = field(repr=False)
    space: dict[str, Any] = field(default_factory=dict, repr=False)
    task = "zeroshot_classification"

    @property
    def bytes_per_item(self) -> int:
        return 4 * self.dim

    def recall_curve(self, direction: str = "image_to_class", ks: range | list[int] | None = None
                     ) -> tuple[list[int], list[float]]:
        """(k values, top-k accuracy), for plotting."""
        ks = list(ks) if ks is not None else list(range(1, min(self.classes, 10) + 1))
        return ks, [recall_at_k(self.ranks, k) for k in ks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "model": self.model, "task": self.task, "metrics": dict(self.metrics),
            "mode": self.mode, "runtime": self.runtime, "dim": self.dim, "bytes_per_item": self.bytes_per_item,
            "images": self.images, "classes": self.classes, "templates": self.templates, "seconds": self.seconds,
            "images_per_second": self.images_per_second, "texts_per_second": self.texts_per_second,
            "index": "exact", "space": dict(self.space),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return _json(self.to_dict(), indent)


def _cell(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def _rate(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def format_table(results: list[RetrievalResult] | list[ZeroshotResult]) -> str:
    """The side-by-side table (recall in %, throughput, dim, bytes per stored vector), one row per model and mode."""
    if not results:
        return ""
    if isinstance(results[0], ZeroshotResult):
        header = ["model", "mode", "acc1", "acc5", "per-class", "images/s", "texts/s", "dim", "bytes/item"]
        rows = [[r.model, r.mode, _cell(r.metrics["acc1"]), _cell(r.metrics["acc5"]),
                 _cell(r.metrics["mean_per_class_recall"]), _rate(r.images_per_second), _rate(r.texts_per_second),
                 str(r.dim), str(r.bytes_per_item)] for r in results]  # type: ignore[union-attr]
        return _table(header, rows)
    ks = results[0].k  # type: ignore[union-attr]
    header = ["model", "mode", *[f"t>i R@{k}" for k in ks], *[f"i>t R@{k}" for k in ks], "images/s", "texts/s",
              "dim", "bytes/item"]
    rows = []
    for r in results:
        assert isinstance(r, RetrievalResult)
        sets = [("", r.metrics)]
        if r.collection is not None:
            sets.append((" via collection", r.collection.metrics))
        for suffix, m in sets:
            rows.append([r.model, r.mode + suffix,
                         *[_cell(m.get(f"image_retrieval_recall@{k}")) for k in ks],
                         *[_cell(m.get(f"text_retrieval_recall@{k}")) for k in ks],
                         _rate(r.images_per_second), _rate(r.texts_per_second), str(r.dim), str(r.bytes_per_item)])
    return _table(header, rows)
