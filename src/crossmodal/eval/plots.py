"""Pictures of results: recall@k curves per model and mode, and a labelled similarity heatmap.

Drawing needs matplotlib (``pip install 'crossmodal[plot]'``). It draws on
its own figure with the Agg backend, so nothing global (pyplot's state, the
process-wide backend) changes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, RuntimeUnavailable
from .results import RetrievalResult, ZeroshotResult

__all__ = ["plot_recall_curves", "plot_similarity"]


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeUnavailable("drawing plots needs matplotlib: pip install 'crossmodal[plot]'") from exc
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path).expanduser()
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ConfigError(f"plot file {out} must end in .png, .svg or .pdf")
    try:
        fig.savefig(out, bbox_inches="tight")
    except OSError as exc:
        raise ConfigError(f"cannot write the plot {out}: {exc}") from exc
    return out


def _label(r: RetrievalResult | ZeroshotResult, suffix: str = "") -> str:
    return f"{r.model} [{r.mode}{suffix}]"


def plot_recall_curves(results: Sequence[RetrievalResult | ZeroshotResult], path: str | os.PathLike[str], *,
                       max_k: int | None = None) -> Path:
    """recall@k for k = 1..max_k, one line per model and mode (and per run through a collection).

    Retrieval results get two panels (text -> image, image -> text); zero-shot
    results one (top-k accuracy).
    """
    if not results:
        raise ConfigError("nothing to plot")
    retrieval = isinstance(results[0], RetrievalResult)
    if any(isinstance(r, RetrievalResult) != retrieval for r in results):
        raise ConfigError("plot retrieval and zero-shot results separately")
    if retrieval:
        panels = [("text_to_image", "text -> image (image_retrieval_recall@k)"),
                  ("image_to_text", "image -> text (text_retrieval_recall@k)")]
    else:
        panels = [("image_to_class", "zero-shot top-k accuracy")]
    fig = _figure(6.0 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (direction, title) in zip(axes, panels):
        for r in results:
            if isinstance(r, RetrievalResult):
                top = max_k or max(max(r.k), 10)
                ks, ys = r.recall_curve(direction, range(1, min(top, r.images if direction == "text_to_image"
                                                                else r.texts) + 1))
                ax.plot(ks, ys, marker="o", markersize=3, label=_label(r))
                if r.collection is not None:
                    kc, yc = r.recall_curve(direction, range(1, min(top, r.collection.top_k) + 1),
                                            through_collection=True)
                    ax.plot(kc, yc, linestyle="--", marker="x", markersize=3, label=_label(r, ", via collection"))
            else:
                ks, ys = r.recall_curve(direction, range(1, min(max_k or 10, r.classes) + 1))
                ax.plot(ks, ys, marker="o", markersize=3, label=_label(r))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("k")
        ax.set_ylabel("recall@k" if retrieval else "accuracy@k")
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"{results[0].dataset}", fontsize=11)
    return _save(fig, path)


_FOLDERS = re.compile(r".*[/\\]")


def _short(label: str) -> str:
    if label.startswith(("image:", "pair:")):
        kind, _, rest = label.partition(":")
        path, bar, text = rest.partition("|")
        label = f"{kind}:{_FOLDERS.sub('', path)}{bar}{text}"
    return label if len(label) <= 40 else label[:37] + "..."


def plot_similarity(labels: Sequence[str], matrix: np.ndarray, path: str | os.PathLike[str], *,
                    title: str = "cosine similarity") -> Path:
    """A heatmap of a square similarity matrix, its rows and columns labelled, each cell annotated.

    Labels in ``crossmodal similarity``'s form (``image:PATH``, ``pair:PATH|text``) show file names only.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    n = len(labels)
    if matrix.shape != (n, n):
        raise ConfigError(f"a {matrix.shape} matrix for {n} labels")
    short = [_short(lab) for lab in labels]
    side = max(4.0, 0.6 * n + 2.5)
    fig = _figure(side + 1.5, side)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(matrix.min())), vmax=1.0)
    ax.set_xticks(range(n), labels=short, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=short, fontsize=8)
    if n <= 30:
        mid = (float(matrix.max()) + float(matrix.min())) / 2
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if matrix[i, j] > mid else "white")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
