"""What :class:`~crossmodal.embedder.Model` returns: rows, the inputs that failed, and the extra text outputs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..runtimes.base import SparseVector

__all__ = ["EmbeddingBatch", "Embeddings", "Failure", "TextEmbeddings", "check_on_error", "collect", "describe_text",
           "l2_normalize"]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); an all-zero row stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    # what np.linalg.norm(vectors, axis=-1, keepdims=True) computes for real input, bit for bit, without its
    # argument handling (which costs more than the arithmetic for the one vector a search normalizes)
    norms = np.sqrt(np.add.reduce(vectors * vectors, axis=-1, keepdims=True))
    return vectors / np.where(norms == 0, 1, norms)


@dataclass(frozen=True)
class Failure:
    """One input that could not be embedded."""

    index: int
    input: str
    error: InputError

    def __str__(self) -> str:
        return f"#{self.index} {self.input}: {self.error}"


@dataclass
class EmbeddingBatch:
    """Vectors for some inputs of a stream, with their positions in it."""

    vectors: np.ndarray  # float32 (n, dim)
    indices: np.ndarray  # int64 (n,): position of each row in the input stream
    failures: list[Failure] = field(default_factory=list)


@dataclass
class Embeddings:
    """The result of ``embed_*(..., on_error="skip")``: good vectors in input order, and what was skipped."""

    vectors: np.ndarray
    indices: np.ndarray
    failures: list[Failure]

    def __len__(self) -> int:
        return len(self.vectors)


@dataclass
class TextEmbeddings:
    """:meth:`Model.embed_text_outputs`: per text, the dense row and the other outputs asked for (else None)."""

    dense: np.ndarray  # float32 (n, dim)
    sparse: list[SparseVector] | None = None
    multivector: list[np.ndarray] | None = None


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def collect(batches: Iterable[EmbeddingBatch], dim: int, on_error: str) -> np.ndarray | Embeddings:
    vectors, indices, failures = [], [], []
    for batch in batches:
        vectors.append(batch.vectors)
        indices.append(batch.indices)
        failures.extend(batch.failures)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
    if on_error == "raise":
        return matrix
    idx = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    return Embeddings(vectors=matrix, indices=idx, failures=failures)



def describe_text(text: Any) -> str:
    if isinstance(text, str):
        return repr(text if len(text) <= 60 else text[:57] + "...")
    return f"<{type(text).__name__}>"
