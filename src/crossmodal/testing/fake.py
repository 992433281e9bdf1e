"""A deterministic fake model for testing everything above the model layer.

:func:`fake_model` returns a real :class:`~crossmodal.embedder.Model` (the same
batching, streaming, skipping, normalization and fusion code) whose encoder is
arithmetic instead of a network, so tests of stores, collections, the CLI and
the server run in milliseconds and their expected results can be worked out
by hand:

* a text's vector is the sum of a fixed pseudo-random vector per word
  (lowercased, split on whitespace), so texts sharing words are close;
* an image's vector is a fixed random projection of its 4x4 mean colours, so
  similar pictures are close.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..embedder import Model
from ..errors import InputError
from ..models.files import ModelFiles, ResolvedModel
from ..models.spec import ImagePreprocess, ModelSpec, TextPreprocess
from ..preprocessing.texts import Tokens, _too_long, check_text
from ..runtimes.base import RuntimeOptions

__all__ = ["FakeEncoder", "FakeTokenizer", "fake_model", "fake_spec"]

_SIDE = 16


def fake_spec(dim: int = 16, name: str = "fake") -> ModelSpec:
    return ModelSpec(
        name=name,
        family="clip",
        dim=dim,
        image=ImagePreprocess(resize="squash", size=(_SIDE, _SIDE), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3),
        text=TextPreprocess(tokenizer="clip-bpe", context_length=32, padding="longest", inputs=("input_ids",)),
        projection="fake",
    )


class FakeTokenizer:
    """Whitespace words -> stable ids (crc32 mod 2^20), with CLIP-like BOS/EOS."""

    pad_id = 0

    def __init__(self, cfg: TextPreprocess) -> None:
        self.cfg = cfg

    def tokenize(self, texts: Sequence[Any], *, truncate: bool = True) -> list[Tokens | InputError]:
        out: list[Tokens | InputError] = []
        for text in texts:
            try:
                words = check_text(text).lower().split()
            except InputError as exc:
                out.append(exc)
                continue
            ids = [1] + [2 + zlib.crc32(w.encode()) % (1 << 20) for w in words] + [1]
            if len(ids) > self.cfg.context_length:
                if not truncate:
                    out.append(_too_long(text, len(ids), self.cfg))
                    continue
                ids = ids[: self.cfg.context_length - 1] + [1]
            out.append(Tokens(ids))
        return out


def _word_vector(token: int, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(str(token).encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class FakeEncoder:
    def __init__(self, dim: int, seed: int = 0) -> None:
        self.dim = dim
        self._proj = np.random.default_rng(seed).standard_normal((3 * 4 * 4, dim)).astype(np.float32)
        self.calls: list[tuple[str, int]] = []  # (tower, batch size), for tests that count batches

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        self.calls.append(("image", len(pixel_values)))
        n = len(pixel_values)
        pooled = pixel_values.reshape(n, 3, 4, _SIDE // 4, 4, _SIDE // 4).mean(axis=(3, 5)).reshape(n, -1)
        return (pooled @ self._proj + 0.01).astype(np.float32)

    def encode_texts(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        ids = inputs["input_ids"]
        self.calls.append(("text", len(ids)))
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for i, row in enumerate(ids):
            for token in row:
                if token > 1:
                    out[i] += _word_vector(int(token), self.dim)
        out += 0.01  # never an all-zero row
        return out


def fake_model(dim: int = 16, *, name: str = "fake", mode: str = "exact", batch_size: int = 8, seed: int = 0) -> Model:
    """A :class:`Model` with a :class:`FakeEncoder`; its space is ``fake`` + ``dim`` + ``seed`` + ``mode``."""
    spec = fake_spec(dim, name)
    resolved = ResolvedModel(
        spec=spec,
        files=ModelFiles(root=Path("."), layout="onnx"),
        weights=f"fake-seed-{seed}",
        origin="local",
    )
    return Model(
        resolved,
        FakeEncoder(dim, seed),
        FakeTokenizer(spec.text),
        runtime="fake",
        options=RuntimeOptions(mode=mode),  # type: ignore[arg-type]
        batch_size=batch_size,
    )
