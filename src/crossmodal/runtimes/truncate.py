"""Matryoshka-style truncation: an encoder's vectors cut to their first ``dim`` values, before normalizing.

What BGE-M3's ``truncate_dim`` does (``LoadOptions(truncate_dim=N)``): the
dense rows keep their first ``N`` values, and so does every multi-vector
row, which is then normalized again (the same vector as normalizing the
truncated raw row). Sparse outputs are token ids, not dimensions, and stay as
they are. Normalizing the dense rows is left to the caller, as for any
encoder. Only models trained for it (BGE-M3) keep their quality when cut.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from .base import Encoder, TextOutputs

__all__ = ["TruncatedEncoder"]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))


class TruncatedEncoder:
    """``inner``'s outputs, each row cut to its first ``dim`` values; the methods ``inner`` has, and no others used."""

    def __init__(self, inner: Encoder, dim: int) -> None:
        self.inner = inner
        self.dim = dim

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.inner.encode_images(pixel_values)[:, : self.dim])

    def encode_texts(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(self.inner.encode_texts(inputs)[:, : self.dim])

    def encode_pairs(self, pixel_values: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
        rows = self.inner.encode_pairs(pixel_values, inputs)  # type: ignore[attr-defined]  # a PairEncoder's
        return np.ascontiguousarray(rows[:, : self.dim])

    def encode_text_outputs(self, inputs: dict[str, np.ndarray], outputs: Collection[str]) -> TextOutputs:
        out = self.inner.encode_text_outputs(inputs, outputs)  # type: ignore[attr-defined]  # a TextOutputsEncoder's
        multi = None if out.multivector is None else [_unit_rows(m[:, : self.dim]) for m in out.multivector]
        return TextOutputs(dense=np.ascontiguousarray(out.dense[:, : self.dim]), sparse=out.sparse, multivector=multi)
