"""The torch modules behind the numpy graph interfaces of :mod:`.encoders`.

Every call runs in eval mode under ``torch.inference_mode()`` in float32, so
no dropout fires and two runs give identical vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoders import M3Encoder, M3Limits, VisualizedEncoder, VisualizedLimits
from .m3 import M3Model, load_m3
from .tokens import BgeTokenizer
from .visualized import VisualizedBGE, load_visualized

__all__ = ["TorchM3Graphs", "TorchVisualizedGraphs", "load_m3_encoder", "load_visualized_encoder", "visualized_limits"]


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


class TorchVisualizedGraphs:
    def __init__(self, model: VisualizedBGE) -> None:
        self.model = model.eval()

    def text(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model.encode_text(_t(input_ids), _t(attention_mask)).numpy()

    def pair(self, pixel_values: np.ndarray, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model.encode_pair(_t(pixel_values), _t(input_ids), _t(attention_mask)).numpy()


class TorchM3Graphs:
    def __init__(self, model: M3Model) -> None:
        self.model = model.eval()
        self.has_heads = model.has_heads
        self.missing_heads = model.missing_heads

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            return tuple(t.numpy() for t in self.model(_t(input_ids), _t(attention_mask)))


def visualized_limits(model: VisualizedBGE) -> VisualizedLimits:
    cfg = model.cfg
    return VisualizedLimits(image_tokens=cfg.image_tokens, max_text_tokens=cfg.max_text_tokens,
                            max_pair_tokens=cfg.max_pair_tokens, image_size=cfg.vision.image_size,
                            dim=cfg.text.hidden_size)


def load_visualized_encoder(root: str | Path, *, weights: str | Path | None = None, **options: Any) -> VisualizedEncoder:
    """A Visualized-BGE directory (``Visualized_*.pth`` + the BGE model's config and tokenizer) on torch.

    ``weights`` names the ``.pth`` when it is not in ``root`` (the hub keeps it in another repo).
    """
    model = load_visualized(root, weights)
    return VisualizedEncoder(TorchVisualizedGraphs(model), BgeTokenizer.from_dir(root), visualized_limits(model), **options)


def load_m3_encoder(root: str | Path, *, heads: bool = True, **options: Any) -> M3Encoder:
    """A BGE-M3 directory on torch (without both head files: the dense output only)."""
    model = load_m3(root, heads=heads)
    limits = M3Limits(max_tokens=model.cfg.max_tokens, dim=model.cfg.hidden_size)
    return M3Encoder(TorchM3Graphs(model), BgeTokenizer.from_dir(root), limits, **options)
