"""A fake model with sparse and multi-vector outputs besides its dense vectors, for testing hybrid search.

It is :func:`~crossmodal.testing.fake.fake_model` plus BGE-M3's two other
outputs, made by arithmetic so tests can work results out by hand:

* sparse: each distinct word (lowercased, split on whitespace) at id
  ``crc32(word) % 30000`` with weight ``(crc32(word + "/w") % 100 + 1) / 100``;
* multi-vector: one unit vector per word, a fixed pseudo-random one per word.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from .fake import fake_model

__all__ = ["FakeTokenModel", "fake_token_model", "word_sparse", "word_vectors"]

VOCAB = 30_000


def word_sparse(text: str) -> dict[int, float]:
    return {zlib.crc32(w.encode()) % VOCAB: (zlib.crc32((w + "/w").encode()) % 100 + 1) / 100
            for w in text.lower().split()}


def word_vectors(text: str, dim: int) -> np.ndarray:
    rows = []
    for w in text.lower().split():
        v = np.random.default_rng(zlib.crc32(w.encode())).standard_normal(dim)
        rows.append(v / np.linalg.norm(v))
    return np.asarray(rows, dtype=np.float32).reshape(-1, dim)


class FakeTokenModel:
    """A fake model (every attribute of :func:`fake_model`'s) with ``embed_sparse`` and ``embed_multivectors``."""

    def __init__(self, dim: int = 16, token_dim: int = 8, **kw: Any) -> None:
        self._model = fake_model(dim=dim, **kw)
        self.token_dim = token_dim

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def embed_sparse(self, texts: Sequence[str]) -> list[dict[int, float]]:
        return [word_sparse(t) for t in texts]

    def embed_multivectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [word_vectors(t, self.token_dim) for t in texts]


def fake_token_model(dim: int = 16, token_dim: int = 8, **kw: Any) -> FakeTokenModel:
    return FakeTokenModel(dim=dim, token_dim=token_dim, **kw)
