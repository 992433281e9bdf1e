"""The seam between crossmodal and an inference engine.

A runtime turns a :class:`~crossmodal.models.registry.ResolvedModel` into an
:class:`Encoder`: two methods, preprocessed arrays in, raw (unnormalized)
tower outputs out. Everything else (decoding, tokenizing, batching,
normalizing, fusing) lives above it and is shared by every runtime, which is
why the same input gives the same vector on ONNX and on PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from ..errors import ConfigError

__all__ = ["Encoder", "RuntimeOptions"]

Mode = Literal["exact", "fast"]
MODES = ("exact", "fast")


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run a model. ``None`` means: the runtime's documented default."""

    mode: Mode = "exact"
    threads: int | None = None  # intra-op threads; None = all physical cores
    device: str | None = None  # "cpu", "cuda", "cuda:1"; None = cpu
    cache_dir: Path | None = None  # where derived artifacts (int8 graphs, exports) are cached

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be 'exact' or 'fast', got {self.mode!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")


class Encoder(Protocol):
    """Both towers of one model on one engine."""

    #: width of each output row
    dim: int

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        """float32 (n, 3, H, W) -> float32 (n, dim) raw image features."""
        ...

    def encode_texts(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """int64 token arrays (n, L) by input name -> float32 (n, dim) raw text features."""
        ...
