"""Texts, images and pairs -> vectors, over either runtime's graphs.

:class:`VisualizedEncoder` and :class:`M3Encoder` do the work around the
graphs: tokenization (with each input's token budget), image decoding and
preprocessing, normalization and M3's post-processing. The graphs are anything
with the methods of :class:`VisualizedGraphs` / :class:`M3Graphs`, numpy in and
out: the torch modules (:mod:`.torch_graphs`) or their ONNX exports
(:mod:`.onnx_run`), so both runtimes share every step but the graph itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError, InputError, ModelLoadError
from ..models.spec import ImagePreprocess
from ..preprocessing.images import DEFAULT_MAX_PIXELS, ImageTransform
from .images import visualized_image
from .m3_outputs import M3Output, m3_outputs, normalize
from .tokens import BgeTokenizer

__all__ = ["M3Encoder", "M3Graphs", "M3Limits", "VisualizedEncoder", "VisualizedGraphs", "VisualizedLimits",
           "length_sorted_chunks"]

#: texts per graph call (texts are cheap; longer batches only add padding)
TEXT_BATCH = 32
#: images or pairs per graph call (an EVA pass each; larger batches are no faster per image on a CPU)
IMAGE_BATCH = 8


def length_sorted_chunks(lengths: Sequence[int], size: int) -> list[np.ndarray]:
    """Positions grouped ``size`` at a time, longest first, so each batch pads to a similar length."""
    if size < 1:
        raise ConfigError(f"batch size must be positive, got {size}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + size] for i in range(0, len(order), size)]


def _rows(tokenizer: BgeTokenizer, texts: Sequence[Any], max_tokens: int, truncate: bool) -> list[list[int]]:
    rows = tokenizer.tokenize(texts, max_tokens=max_tokens, truncate=truncate)
    for i, row in enumerate(rows):
        if isinstance(row, InputError):
            raise row.at(i)
    return rows  # type: ignore[return-value]


class VisualizedGraphs(Protocol):
    def text(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Raw CLS vectors (B, H) of tokenized texts."""
        ...

    def pair(self, pixel_values: np.ndarray, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Raw CLS vectors (B, H) of images fused with their tokenized texts."""
        ...


class M3Graphs(Protocol):
    has_heads: bool
    missing_heads: tuple[str, ...]  # the head files the model was loaded without (when it has no heads)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, ...]:
        """(cls,) or (cls, token_weights, colbert) of tokenized texts."""
        ...


@dataclass(frozen=True)
class VisualizedLimits:
    image_tokens: int  # N: the image tokens a pair's sequence holds
    max_text_tokens: int  # the longest text (special tokens included) a text input can have
    max_pair_tokens: int  # the longest text a pair can carry after its N image tokens
    image_size: int
    dim: int  # the vectors' dimension (the text model's hidden size)


@dataclass(frozen=True)
class M3Limits:
    max_tokens: int
    dim: int


class VisualizedEncoder:
    """Visualized-BGE's three inputs: texts, images (an empty prompt) and image+text pairs.

    Vectors are L2-normalized unless ``normalized=False``. Images are decoded
    with crossmodal's rules (EXIF orientation, 16-bit scaling, a
    decompression-bomb guard of ``max_pixels``), then preprocessed by ``image``
    (by default the reference's: :func:`.images.visualized_image`). Texts over
    their budget are cut, or raise :class:`TextTooLong` with ``truncate=False``.
    Texts run ``text_batch_size`` at a time, sorted by length; images and pairs
    ``batch_size`` at a time (pairs sorted by text length). The result is in
    input order and does not depend on the batch sizes (within 1e-6).
    """

    def __init__(self, graphs: VisualizedGraphs, tokenizer: BgeTokenizer, limits: VisualizedLimits, *,
                 image: ImagePreprocess | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 batch_size: int = IMAGE_BATCH, text_batch_size: int = TEXT_BATCH) -> None:
        if batch_size < 1 or text_batch_size < 1:
            raise ConfigError(f"batch sizes must be positive, got {batch_size} and {text_batch_size}")
        self.batch_size = batch_size
        self.text_batch_size = text_batch_size
        self.graphs = graphs
        self.tokenizer = tokenizer
        self.limits = limits
        self.image = image or visualized_image(limits.image_size)
        if self.image.output_size != (limits.image_size, limits.image_size):
            raise ConfigError(f"the image preprocessing gives {self.image.output_size} pixels, the model takes "
                              f"{limits.image_size}")
        self.transform = ImageTransform(self.image)
        self.max_pixels = max_pixels
        self._empty_prompt = tokenizer.ids("")

    def _finish(self, vectors: np.ndarray, normalized: bool) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        return normalize(vectors) if normalized else vectors

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.limits.dim), dtype=np.float32)

    def _pixels_at(self, images: Sequence[Any], idx: np.ndarray) -> np.ndarray:
        decoded = []
        for i in idx.tolist():
            try:
                decoded.append(self.transform.load(images[i], max_pixels=self.max_pixels))
            except InputError as exc:
                raise exc.at(i) from None
        return self.transform.batch(decoded)

    def embed_texts(self, texts: Sequence[str], *, truncate: bool = True, normalized: bool = True) -> np.ndarray:
        if not texts:
            return self._empty()
        rows = _rows(self.tokenizer, texts, self.limits.max_text_tokens, truncate)
        out = np.empty((len(rows), self.limits.dim), dtype=np.float32)
        for idx in length_sorted_chunks([len(r) for r in rows], self.text_batch_size):
            batch = self.tokenizer.pad([rows[i] for i in idx])
            out[idx] = self.graphs.text(batch.input_ids, batch.attention_mask)
        return self._finish(out, normalized)

    def embed_images(self, images: Sequence[Any], *, normalized: bool = True) -> np.ndarray:
        if not images:
            return self._empty()
        return self._fused(images, [self._empty_prompt] * len(images), normalized)

    def embed_pairs(self, images: Sequence[Any], texts: Sequence[str], *, truncate: bool = True,
                    normalized: bool = True) -> np.ndarray:
        if len(images) != len(texts):
            raise ConfigError(f"{len(images)} images but {len(texts)} texts: a pair is one image and one text")
        if not texts:
            return self._empty()
        return self._fused(images, _rows(self.tokenizer, texts, self.limits.max_pair_tokens, truncate), normalized)

    def _fused(self, images: Sequence[Any], rows: list[list[int]], normalized: bool) -> np.ndarray:
        out = np.empty((len(rows), self.limits.dim), dtype=np.float32)
        for idx in length_sorted_chunks([len(r) for r in rows], self.batch_size):
            batch = self.tokenizer.pad([rows[i] for i in idx])
            out[idx] = self.graphs.pair(self._pixels_at(images, idx), batch.input_ids, batch.attention_mask)
        return self._finish(out, normalized)


class M3Encoder:
    """BGE-M3's dense, sparse and ColBERT outputs for texts (see :mod:`.m3_outputs`)."""

    def __init__(self, graphs: M3Graphs, tokenizer: BgeTokenizer, limits: M3Limits, *,
                 batch_size: int = TEXT_BATCH) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.graphs = graphs
        self.tokenizer = tokenizer
        self.limits = limits

    @property
    def vocab_size(self) -> int:
        """The sparse outputs' dimension: every token id is below it."""
        return self.tokenizer.vocab_size

    def encode(self, texts: Sequence[str], *, dense: bool = True, sparse: bool = False, colbert: bool = False,
               truncate_dim: int | None = None, max_tokens: int | None = None, truncate: bool = True) -> M3Output:
        """``max_tokens`` defaults to the model's position limit (BGEM3FlagModel's default is 512)."""
        if not (dense or sparse or colbert):
            raise ConfigError("ask for at least one of the dense, sparse and colbert outputs")
        if (sparse or colbert) and not self.graphs.has_heads:
            missing = " and ".join(self.graphs.missing_heads) or "its head files"
            raise ModelLoadError(
                f"{self.tokenizer.source} was loaded without {missing}: the sparse and ColBERT outputs need "
                "colbert_linear.pt and sparse_linear.pt beside the model (only the dense output works without them)"
            )
        limit = self.limits.max_tokens if max_tokens is None else max_tokens
        if not 2 <= limit <= self.limits.max_tokens:
            raise ConfigError(f"max_tokens must be between 2 and the model's {self.limits.max_tokens}, got {limit}")
        if not texts:
            dim = min(self.limits.dim, truncate_dim or self.limits.dim)
            return M3Output(dense=np.zeros((0, dim), np.float32) if dense else None, sparse=[] if sparse else None,
                            colbert=[] if colbert else None)
        rows = _rows(self.tokenizer, texts, limit, truncate)
        n = len(rows)
        dense_out: list[Any] = [None] * n
        sparse_out: list[Any] = [None] * n
        colbert_out: list[Any] = [None] * n
        for idx in length_sorted_chunks([len(r) for r in rows], self.batch_size):
            batch = self.tokenizer.pad([rows[i] for i in idx])
            part = m3_outputs(self.graphs.run(batch.input_ids, batch.attention_mask), batch.input_ids,
                              batch.attention_mask, excluded_ids=self.tokenizer.specials.lexical_exclusions,
                              dense=dense, sparse=sparse, colbert=colbert, truncate_dim=truncate_dim)
            for j, i in enumerate(idx.tolist()):
                if part.dense is not None:
                    dense_out[i] = part.dense[j]
                if part.sparse is not None:
                    sparse_out[i] = part.sparse[j]
                if part.colbert is not None:
                    colbert_out[i] = part.colbert[j]
        return M3Output(dense=np.stack(dense_out) if dense else None, sparse=sparse_out if sparse else None,
                        colbert=colbert_out if colbert else None)
