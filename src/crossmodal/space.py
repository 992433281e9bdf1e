"""Space: the identity of an embedding space, so vectors from two spaces never mix.

Two models share a space when they carry the same trained weights, the same
preprocessing and the same precision mode. ONNX and PyTorch runs of one model
share a space (their vectors agree within 1e-5); ``exact`` and ``fast`` (int8)
do not. A collection records the space that made its vectors and refuses
models, vectors and queries from any other.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import DimensionMismatch, InputError, SpaceMismatch

__all__ = ["Space", "space_fingerprint"]


def space_fingerprint(weights: str, preprocessing: str, mode: str) -> str:
    return hashlib.sha256(f"{weights}|{preprocessing}|{mode}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Space:
    model: str  # display name of the model
    dim: int
    normalized: bool
    fingerprint: str  # weights + preprocessing + mode
    mode: str = "exact"

    def __str__(self) -> str:
        norm = "normalized" if self.normalized else "raw"
        return f"{self.model} [{self.mode}, dim {self.dim}, {norm}, {self.fingerprint}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Space:
        return cls(
            model=str(data["model"]),
            dim=int(data["dim"]),
            normalized=bool(data["normalized"]),
            fingerprint=str(data["fingerprint"]),
            mode=str(data.get("mode", "exact")),
        )

    def check_same(self, other: Space, what: str = "collection") -> None:
        """Raise :class:`SpaceMismatch` naming both spaces unless ``other`` is this space."""
        if (self.fingerprint, self.dim, self.normalized) != (other.fingerprint, other.dim, other.normalized):
            raise SpaceMismatch(
                f"the {what} was built in space {self} but the model given is in space {other}; "
                "vectors from different spaces cannot be compared. Use the model the collection was built with, "
                "or create a new collection"
            )

    def check_vectors(self, vectors: np.ndarray, what: str = "vector") -> np.ndarray:
        """A float32 (n, dim) view of ``vectors``, or :class:`DimensionMismatch`."""
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise DimensionMismatch(
                f"{what} has shape {tuple(np.shape(vectors))}, but space {self} holds vectors of dim {self.dim}"
            )
        if not np.isfinite(arr).all():
            raise InputError(f"{what} holds NaN or infinite values", input=what)
        return arr
