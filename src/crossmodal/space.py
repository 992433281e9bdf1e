"""Space: the identity of an embedding space, so vectors from two spaces never mix.

Two models share a space when they carry the same trained weights, the same
preprocessing and the same precision mode. ONNX and PyTorch runs of one model
share a space (their vectors agree within 1e-5); ``exact`` and ``fast`` (int8)
do not. A collection records the space that made its vectors and refuses
models, vectors and queries from any other.

A space also records its :class:`PairRule`: how its image+text pair vectors
are made (a weighted sum of the image and text vectors, with its default image
weight, or the model's own fused encoder). A collection refuses a model whose
pair rule differs from the one that made its pairs, even in the same space, so
that pairs made by two rules never mix.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from .errors import ConfigError, DimensionMismatch, InputError, SpaceMismatch

__all__ = ["PAIR_RULES", "PairRule", "Space", "space_fingerprint"]

PairKind = Literal["weighted-sum", "graph", "none"]
PAIR_RULES: tuple[str, ...] = ("weighted-sum", "graph", "none")


def space_fingerprint(weights: str, preprocessing: str, mode: str) -> str:
    return hashlib.sha256(f"{weights}|{preprocessing}|{mode}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PairRule:
    """How a space's image+text pair vectors are made.

    ``weighted-sum``: ``normalize(w * image + (1 - w) * text)`` of the unit
    image and text vectors, ``image_weight`` being the default ``w`` (a pair
    may give its own); ``graph``: the model's own fused encoder takes the image
    and the text at once (no weight); ``none``: the model embeds no pairs.
    """

    kind: PairKind = "weighted-sum"
    image_weight: float | None = 0.5

    def __post_init__(self) -> None:
        if self.kind not in PAIR_RULES:
            raise ConfigError(f"a pair rule is one of {', '.join(PAIR_RULES)}, got {self.kind!r}")
        if self.kind == "weighted-sum":
            if isinstance(self.image_weight, bool) or not isinstance(self.image_weight, (int, float)) \
                    or not 0.0 <= self.image_weight <= 1.0:
                raise ConfigError(f"a weighted-sum pair rule needs an image weight in [0, 1], got {self.image_weight!r}")
            object.__setattr__(self, "image_weight", float(self.image_weight))
        elif self.image_weight is not None:
            raise ConfigError(f"a {self.kind!r} pair rule has no image weight, got {self.image_weight!r}")

    def __str__(self) -> str:
        if self.kind == "weighted-sum":
            return f"a weighted sum of the image and text vectors (default image weight {self.image_weight:g})"
        return "the model's fused pair encoder" if self.kind == "graph" else "no pair rule (the model embeds no pairs)"

    @classmethod
    def of(cls, fusion: str, image_weight: float, embeds_pairs: bool) -> PairRule:
        """The rule of a model whose spec fuses pairs by ``fusion`` (``weighted-sum`` or ``graph``)."""
        if not embeds_pairs:
            return cls("none", None)
        return cls("graph", None) if fusion == "graph" else cls("weighted-sum", image_weight)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PairRule:
        """The rule ``to_dict`` wrote; a space recorded before pair rules were is a weighted sum at 0.5."""
        if data is None:
            return cls()
        weight = data.get("image_weight")
        return cls(kind=data.get("kind", "weighted-sum"), image_weight=None if weight is None else float(weight))


@dataclass(frozen=True)
class Space:
    model: str  # display name of the model
    dim: int
    normalized: bool
    fingerprint: str  # weights + preprocessing + mode
    mode: str = "exact"
    pairs: PairRule = PairRule()  # how pair vectors are made (not part of the fingerprint: texts and images agree)

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
            pairs=PairRule.from_dict(data.get("pairs")),
        )

    def check_same(self, other: Space, what: str = "collection") -> None:
        """Raise :class:`SpaceMismatch` naming both spaces unless ``other`` is this space."""
        if (self.fingerprint, self.dim, self.normalized) != (other.fingerprint, other.dim, other.normalized):
            raise SpaceMismatch(
                f"the {what} was built in space {self} but the model given is in space {other}; "
                "vectors from different spaces cannot be compared. Use the model the collection was built with, "
                "or create a new collection"
            )
        if self.pairs != other.pairs:
            raise SpaceMismatch(
                f"the {what} holds image+text pairs made by {self.pairs}, but the model given makes pairs by "
                f"{other.pairs}; pair vectors made by two rules do not compare. Use a model with the {what}'s "
                "pair rule, or create a new collection"
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
