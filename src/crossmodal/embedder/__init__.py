"""Model: texts, images and image+text pairs -> vectors in one space.

Everything between the caller and the runtime's :class:`Encoder` lives here and
is shared by every runtime: decoding and preprocessing, tokenizing, batching,
streaming, skipping bad inputs, L2 normalization and pair fusion.

Inputs stream: any iterable is consumed a window at a time, so a generator of
100k paths never has more than a few batches decoded at once. The ``iter_*``
methods yield :class:`EmbeddingBatch` objects; the ``embed_*`` methods collect
them into one array.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, InputError, UnsupportedInput
from ..models.files import ResolvedModel
from ..models.spec import OUTPUTS, Capabilities, ModelSpec
from ..pipeline import ImagePipeline, auto_batch_size, auto_workers
from ..preprocessing.images import DEFAULT_MAX_PIXELS, ImageInput, ImageTransform
from ..preprocessing.texts import Tokenizer, Tokens, pad, token_batches, within
from ..runtimes.base import Encoder, PairEncoder, RuntimeOptions, TextOutputsEncoder
from ..space import PairRule, Space, space_fingerprint
from .results import (
    EmbeddingBatch,
    Embeddings,
    Failure,
    TextEmbeddings,
    check_on_error,
    collect,
    describe_text,
    l2_normalize,
)

__all__ = ["EmbeddingBatch", "Embeddings", "Failure", "Model", "TextEmbeddings", "l2_normalize"]

OnError = Literal["raise", "skip"]


def _check_many_images(images: Any) -> None:
    """Catch one image passed where a list of images belongs (a str would be iterated letter by letter)."""
    import os

    from PIL import Image

    single = isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike, Image.Image))
    if single or (isinstance(images, np.ndarray) and images.ndim != 4):
        raise InputError("images must be a list (or iterable) of images, not one image; wrap it: [image]")


def _windows(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class Model:
    """One loaded model. Build it with :func:`crossmodal.load_model`.

    ``capabilities`` (its family's) say which inputs it embeds and which
    outputs it gives; asking for another raises :class:`UnsupportedInput`.
    """

    def __init__(
        self,
        resolved: ResolvedModel,
        encoder: Encoder,
        tokenizer: Tokenizer,
        *,
        runtime: str,
        options: RuntimeOptions,
        capabilities: Capabilities | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.spec: ModelSpec = resolved.spec
        self.capabilities = capabilities or Capabilities()
        self.resolved = resolved
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.runtime = runtime
        self.options = options
        self.transform = ImageTransform(self.spec.image) if self.spec.image is not None else None
        self.batch_size = batch_size or auto_batch_size(options.device)
        self.workers = workers
        self.max_pixels = max_pixels
        self.space = Space(
            model=self.spec.name, dim=self.spec.dim, normalized=True,
            fingerprint=space_fingerprint(resolved.weights, self.spec.preprocessing_digest(), options.mode),
            mode=options.mode,
            pairs=PairRule.of(self.spec.fusion.kind, self.spec.fusion.image_weight, self.capabilities.accepts("pair")),
        )

    def __repr__(self) -> str:
        return f"<crossmodal.Model {self.spec.name} runtime={self.runtime} mode={self.mode} dim={self.dim}>"

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def mode(self) -> str:
        return self.options.mode

    @property
    def name(self) -> str:
        return self.spec.name

    def _require(self, modality: str) -> None:
        if not self.capabilities.accepts(modality):
            kinds = {"text": "texts", "image": "images", "pair": "image+text pairs"}
            accepted = ", ".join(kinds[m] for m in self.capabilities.inputs)
            raise UnsupportedInput(f"model {self.name!r} does not embed {kinds[modality]}; it embeds {accepted}")

    # -- texts -----------------------------------------------------------------

    def iter_texts(
        self,
        texts: Iterable[str],
        *,
        normalize: bool = True,
        truncate: bool = True,
        batch_size: int | None = None,
        on_error: OnError = "raise",
    ) -> Iterator[EmbeddingBatch]:
        """Embed a stream of texts, yielding one batch at a time in input order.

        Within a window of texts, batches are formed by token length, so each
        is padded no further than it must be (CLIP), and put back in order.
        """
        check_on_error(on_error)
        self._require("text")
        if isinstance(texts, str):
            raise InputError("texts must be a list of strings, not one string; wrap it: [text]", input=texts[:60])
        size = batch_size or max(self.batch_size, 64)
        offset = 0
        for window in _windows(texts, size * 8):
            tokens = self.tokenizer.tokenize(window, truncate=truncate)
            failures = self._failures(window, tokens, offset, on_error)
            good = [i for i, t in enumerate(tokens) if isinstance(t, Tokens)]
            rows = np.empty((len(window), self.dim), dtype=np.float32)
            # Sort by length so each batch pads only to its own longest text.
            good.sort(key=lambda i: len(tokens[i].ids))  # type: ignore[union-attr]
            lengths = [len(t.ids) if isinstance(t, Tokens) else 0 for t in tokens]
            for chunk in token_batches(good, lengths, size):
                inputs = pad(self.tokenizer, [tokens[i] for i in chunk])  # type: ignore[misc]
                rows[chunk] = self.encoder.encode_texts(inputs)
            good.sort()
            yield from self._emit(rows, good, offset, failures, size, normalize)
            offset += len(window)

    def embed_texts(
        self,
        texts: Iterable[str],
        *,
        output: str = "dense",
        normalize: bool = True,
        truncate: bool = True,
        batch_size: int | None = None,
        on_error: OnError = "raise",
    ) -> Any:
        """Texts -> float32 (n, dim); unit-norm rows unless ``normalize=False``.

        With ``on_error="skip"``, returns :class:`Embeddings` (the good vectors,
        their input positions, and a :class:`Failure` per skipped text).
        ``output="sparse"`` / ``"multivector"`` (models that give them, see
        ``capabilities``): a list with, per text, a :class:`SparseVector`
        (ascending token ids, float32 weights) / a float32 (tokens, dim) array
        of unit rows (:meth:`embed_text_outputs`).
        """
        if output != "dense":
            if output not in OUTPUTS:
                raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
            if on_error != "raise":
                raise ConfigError(f"on_error={on_error!r} applies to the dense output only")
            if isinstance(texts, str):
                raise InputError("texts must be a list of strings, not one string; wrap it: [text]", input=texts[:60])
            out = self.embed_text_outputs(list(texts), outputs=(output,), truncate=truncate, batch_size=batch_size)
            return out.sparse if output == "sparse" else out.multivector
        batches = self.iter_texts(texts, normalize=normalize, truncate=truncate, batch_size=batch_size, on_error=on_error)
        return collect(batches, self.dim, on_error)

    # -- images ----------------------------------------------------------------

    def _pipeline(self, workers: int | None, batch_size: int, processes: bool = False) -> ImagePipeline:
        if self.spec.image is None:
            raise UnsupportedInput(f"model {self.name!r} has no image tower")
        if workers is None:
            workers = self.workers if self.workers is not None else auto_workers(device=self.options.device)
        return ImagePipeline(
            self.spec.image,
            batch_size=batch_size,
            workers=workers,
            max_pixels=self.max_pixels,
            fast=self.mode == "fast",
            processes=processes,
        )

    def iter_images(
        self,
        images: Iterable[ImageInput],
        *,
        normalize: bool = True,
        batch_size: int | None = None,
        on_error: OnError = "raise",
        workers: int | None = None,
        processes: bool = False,
    ) -> Iterator[EmbeddingBatch]:
        """Embed a stream of images (paths, bytes, PIL images, uint8 arrays), one batch at a time.

        Decoding runs on ``workers`` threads (default: chosen from the cores;
        0: inline) ahead of inference, and the next batch is inferred while the
        caller handles this one (see :mod:`crossmodal.pipeline`).
        ``processes=True`` decodes on worker processes instead: for long runs
        whose own Python work (hashing, writing) competes with decoding for
        the GIL; it costs a pool start-up, and scripts using it need an
        ``if __name__ == "__main__":`` guard.
        """
        check_on_error(on_error)
        self._require("image")
        _check_many_images(images)
        size = batch_size or self.batch_size
        with self._pipeline(workers, size, processes) as pipeline:
            for batch, raw in pipeline.encode(images, self.encoder.encode_images):
                failures = [self._fail(index, name, error, on_error) for index, name, error in batch.failures]
                if raw is None:
                    vectors = np.zeros((0, self.dim), dtype=np.float32)
                else:
                    vectors = l2_normalize(raw) if normalize else raw
                yield EmbeddingBatch(vectors, np.asarray(batch.indices, dtype=np.int64), failures)

    def embed_images(
        self,
        images: Iterable[ImageInput],
        *,
        normalize: bool = True,
        batch_size: int | None = None,
        on_error: OnError = "raise",
        workers: int | None = None,
        processes: bool = False,
    ) -> Any:
        """Images -> float32 (n, dim); see :meth:`embed_texts` for ``on_error``."""
        batches = self.iter_images(images, normalize=normalize, batch_size=batch_size, on_error=on_error,
                                   workers=workers, processes=processes)
        return collect(batches, self.dim, on_error)

    def preprocess_image(self, image: ImageInput) -> np.ndarray:
        """The float32 (3, H, W) tensor the vision tower receives for ``image``."""
        self._require("image")
        assert self.transform is not None
        return self.transform(self.transform.load(image, max_pixels=self.max_pixels))

    # -- pairs -----------------------------------------------------------------

    def iter_pairs(
        self,
        images: Iterable[ImageInput],
        texts: Iterable[str],
        *,
        image_weight: float | None = None,
        normalize: bool = True,
        truncate: bool = True,
        batch_size: int | None = None,
        on_error: OnError = "raise",
        workers: int | None = None,
    ) -> Iterator[EmbeddingBatch]:
        """Embed (image, text) pairs as one composed vector each.

        For CLIP-family spaces the pair vector is
        ``normalize(w * normalize(image) + (1 - w) * normalize(text))`` with
        ``w = image_weight`` (default: the spec's fusion weight, 0.5). A pair
        fails when either half does. A family with its own fused graph
        (fusion kind ``graph``) computes the pair vector itself.
        """
        self._require("pair")
        if self.spec.fusion.kind == "graph":
            if image_weight is not None:
                raise ConfigError(f"image_weight does not apply to {self.name!r}: its own graph fuses each pair")
            yield from self._fused_pairs(images, texts, normalize=normalize, truncate=truncate,
                                         batch_size=batch_size, on_error=on_error, workers=workers)
            return
        weight = self.spec.fusion.image_weight if image_weight is None else float(image_weight)
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"image_weight must be in [0, 1], got {weight}")
        if isinstance(texts, str):
            raise InputError("texts must be a list of strings, not one string", input=texts[:60])
        size = batch_size or self.batch_size
        sentinel = object()
        pairs = itertools.zip_longest(images, texts, fillvalue=sentinel)
        offset = 0
        for window in _windows(pairs, size * 4):
            if any(img is sentinel or txt is sentinel for img, txt in window):
                raise InputError("embed_pairs needs as many texts as images")
            imgs = list(self.iter_images([p[0] for p in window], batch_size=size, on_error="skip", workers=workers))
            txts = list(self.iter_texts([p[1] for p in window], truncate=truncate, batch_size=size, on_error="skip"))
            img_vecs = np.full((len(window), self.dim), np.nan, dtype=np.float32)
            txt_vecs = np.full((len(window), self.dim), np.nan, dtype=np.float32)
            bad: dict[int, Failure] = {}
            for target, batches in ((img_vecs, imgs), (txt_vecs, txts)):
                for batch in batches:
                    target[batch.indices] = batch.vectors
                    for f in batch.failures:
                        bad.setdefault(f.index, f)
            failures = [self._fail(offset + i, f.input, f.error, on_error) for i, f in sorted(bad.items())]
            good = [i for i in range(len(window)) if i not in bad]
            fused = weight * img_vecs[good] + (1.0 - weight) * txt_vecs[good]
            vectors = l2_normalize(fused) if normalize else fused.astype(np.float32)
            yield EmbeddingBatch(vectors, np.asarray(good, dtype=np.int64) + offset, failures)
            offset += len(window)

    def embed_pairs(
        self,
        images: Iterable[ImageInput],
        texts: Iterable[str],
        *,
        image_weight: float | None = None,
        normalize: bool = True,
        truncate: bool = True,
        batch_size: int | None = None,
        on_error: OnError = "raise",
        workers: int | None = None,
    ) -> Any:
        """(image, text) pairs -> float32 (n, dim) composed vectors."""
        batches = self.iter_pairs(
            images, texts, image_weight=image_weight, normalize=normalize, truncate=truncate,
            batch_size=batch_size, on_error=on_error, workers=workers,
        )
        return collect(batches, self.dim, on_error)

    def _fused_pairs(self, images: Iterable[ImageInput], texts: Iterable[str], *, normalize: bool, truncate: bool,
                     batch_size: int | None, on_error: OnError, workers: int | None) -> Iterator[EmbeddingBatch]:
        """Pairs through the family's fused graph: pixels and tokens of the same pairs in one call."""
        if isinstance(texts, str):
            raise InputError("texts must be a list of strings, not one string", input=texts[:60])
        encoder: PairEncoder = self.encoder  # type: ignore[assignment]  # fusion "graph" promises encode_pairs
        size = batch_size or self.batch_size
        sentinel = object()
        offset = 0
        for window in _windows(itertools.zip_longest(images, texts, fillvalue=sentinel), size * 4):
            if any(img is sentinel or txt is sentinel for img, txt in window):
                raise InputError("embed_pairs needs as many texts as images")
            pixels: dict[int, np.ndarray] = {}
            bad: dict[int, tuple[str, InputError]] = {}
            with self._pipeline(workers, size) as pipeline:
                for batch in pipeline.batches([p[0] for p in window]):
                    pixels.update((i, batch.pixels[row]) for row, i in enumerate(batch.indices))
                    for i, name, error in batch.failures:
                        bad.setdefault(i, (name, error))
            texts_ = [p[1] for p in window]
            tokens = within(self.tokenizer.tokenize(texts_, truncate=truncate), texts_,
                            self.spec.text.pair_context_length, truncate)
            for i, tok in enumerate(tokens):
                if isinstance(tok, InputError):
                    bad.setdefault(i, (describe_text(window[i][1]), tok))
            failures = [self._fail(offset + i, name, error, on_error) for i, (name, error) in sorted(bad.items())]
            good = [i for i in range(len(window)) if i not in bad]
            rows = np.empty((len(good), self.dim), dtype=np.float32)
            for start in range(0, len(good), size):
                chunk = good[start : start + size]
                inputs = pad(self.tokenizer, [tokens[i] for i in chunk])  # type: ignore[misc]
                rows[start : start + len(chunk)] = encoder.encode_pairs(np.stack([pixels[i] for i in chunk]), inputs)
            yield EmbeddingBatch(l2_normalize(rows) if normalize else rows, np.asarray(good, dtype=np.int64) + offset,
                                 failures)
            offset += len(window)

    # -- outputs beyond one dense row ------------------------------------------------

    def embed_text_outputs(self, texts: Sequence[str], *, outputs: Sequence[str] = ("dense",), normalize: bool = True,
                           truncate: bool = True, batch_size: int | None = None) -> TextEmbeddings:
        """Texts -> the dense rows plus the ``outputs`` asked for (``sparse``, ``multivector``), in input order.

        ``normalize`` applies to the dense rows; sparse weights and token
        vectors are returned as the family computes them. A text that cannot
        be embedded raises (naming it).
        """
        self._require("text")
        missing = [o for o in outputs if not self.capabilities.gives(o)]
        if missing:
            raise UnsupportedInput(f"model {self.name!r} gives no {', '.join(missing)} output; it gives "
                                   f"{', '.join(self.capabilities.outputs)}")
        wanted = {"dense", *outputs}
        if wanted == {"dense"}:
            return TextEmbeddings(self.embed_texts(texts, normalize=normalize, truncate=truncate, batch_size=batch_size))
        encoder: TextOutputsEncoder = self.encoder  # type: ignore[assignment]  # promised by the capabilities
        size = batch_size or max(self.batch_size, 64)
        tokens = self.tokenizer.tokenize(list(texts), truncate=truncate)
        self._failures(list(texts), tokens, 0, "raise")
        n = len(tokens)
        dense = np.empty((n, self.dim), dtype=np.float32)
        sparse: list[Any] = [None] * n
        multi: list[Any] = [None] * n
        order = sorted(range(n), key=lambda i: len(tokens[i].ids))  # type: ignore[union-attr]  # pad per length
        for chunk in token_batches(order, [len(t.ids) for t in tokens], size):  # type: ignore[union-attr]
            out = encoder.encode_text_outputs(pad(self.tokenizer, [tokens[i] for i in chunk]), wanted)  # type: ignore[misc]
            dense[chunk] = l2_normalize(out.dense) if normalize else out.dense
            for j, i in enumerate(chunk):
                sparse[i] = out.sparse[j] if out.sparse is not None else None
                multi[i] = out.multivector[j] if out.multivector is not None else None
        return TextEmbeddings(dense, sparse if "sparse" in wanted else None, multi if "multivector" in wanted else None)

    # -- helpers -----------------------------------------------------------------

    def _fail(self, index: int, name: str, error: InputError, on_error: str) -> Failure:
        if on_error == "raise":
            raise error.at(index)
        return Failure(index=index, input=name, error=error)

    def _failures(self, window: Sequence[Any], tokens: Sequence[Any], offset: int, on_error: str) -> list[Failure]:
        return [
            self._fail(offset + i, describe_text(window[i]), tok, on_error)
            for i, tok in enumerate(tokens)
            if isinstance(tok, InputError)
        ]

    def _emit(
        self, rows: np.ndarray, good: list[int], offset: int, failures: list[Failure], size: int, normalize: bool
    ) -> Iterator[EmbeddingBatch]:
        if not good:
            yield EmbeddingBatch(np.zeros((0, self.dim), dtype=np.float32), np.zeros(0, dtype=np.int64), failures)
            return
        for start in range(0, len(good), size):
            chunk = good[start : start + size]
            vectors = rows[chunk]
            yield EmbeddingBatch(
                l2_normalize(vectors) if normalize else vectors,
                np.asarray(chunk, dtype=np.int64) + offset,
                failures if start == 0 else [],
            )
