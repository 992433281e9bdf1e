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

__all__ = ["M3Encoder", "M3Graphs", "M3Limits", "VisualizedEncoder", "VisualizedGraphs", "VisualizedLimits"]


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
    """

    def __init__(self, graphs: VisualizedGraphs, tokenizer: BgeTokenizer, limits: VisualizedLimits, *,
                 image: ImagePreprocess | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
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

    def pixels(self, images: Sequence[Any]) -> np.ndarray:
        decoded = []
        for i, item in enumerate(images):
            try:
                decoded.append(self.transform.load(item, max_pixels=self.max_pixels))
            except InputError as exc:
                raise exc.at(i) from None
        return self.transform.batch(decoded)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.limits.dim), dtype=np.float32)

    def embed_texts(self, texts: Sequence[str], *, truncate: bool = True, normalized: bool = True) -> np.ndarray:
        if not texts:
            return self._empty()
        batch = self.tokenizer.encode(texts, max_tokens=self.limits.max_text_tokens, truncate=truncate)
        return self._finish(self.graphs.text(batch.input_ids, batch.attention_mask), normalized)

    def embed_images(self, images: Sequence[Any], *, normalized: bool = True) -> np.ndarray:
        if not images:
            return self._empty()
        pixels = self.pixels(images)
        prompt = self.tokenizer.pad([self._empty_prompt] * len(pixels))
        return self._finish(self.graphs.pair(pixels, prompt.input_ids, prompt.attention_mask), normalized)

    def embed_pairs(self, images: Sequence[Any], texts: Sequence[str], *, truncate: bool = True,
                    normalized: bool = True) -> np.ndarray:
        if len(images) != len(texts):
            raise ConfigError(f"{len(images)} images but {len(texts)} texts: a pair is one image and one text")
        if not texts:
            return self._empty()
        batch = self.tokenizer.encode(texts, max_tokens=self.limits.max_pair_tokens, truncate=truncate)
        pixels = self.pixels(images)
        return self._finish(self.graphs.pair(pixels, batch.input_ids, batch.attention_mask), normalized)


class M3Encoder:
    """BGE-M3's dense, sparse and ColBERT outputs for texts (see :mod:`.m3_outputs`)."""

    def __init__(self, graphs: M3Graphs, tokenizer: BgeTokenizer, limits: M3Limits) -> None:
        self.graphs = graphs
        self.tokenizer = tokenizer
        self.limits = limits

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
        batch = self.tokenizer.encode(texts, max_tokens=limit, truncate=truncate)
        raw = self.graphs.run(batch.input_ids, batch.attention_mask)
        return m3_outputs(raw, batch.input_ids, batch.attention_mask,
                          excluded_ids=self.tokenizer.specials.lexical_exclusions,
                          dense=dense, sparse=sparse, colbert=colbert, truncate_dim=truncate_dim)
