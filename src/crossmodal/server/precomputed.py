"""Adding items with vectors the micro-batcher already made.

The store keeps one thread, and a collection embeds what it adds; embedding
32 large images there would hold every other store call (every search) for
as long. So the service embeds the items of an add request through the
micro-batcher first (fairly, among the other requests), then hands the
collection a :class:`PrecomputedModel`: it answers the collection's embed
calls from those vectors, so ids, content hashes, skipping what is stored
already and the per-item failures stay the collection's own logic, and the
store thread only writes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from ..embedder import EmbeddingBatch, Failure, Model
from ..errors import InputError

__all__ = ["PrecomputedModel", "pair_key"]


def pair_key(image: bytes, text: str) -> tuple[bytes, str]:
    return (image, text)


class PrecomputedModel:
    """Looks like ``model`` to a collection; its vectors come from a table (input -> vector or error).

    Keys are the inputs themselves (a text, an image's bytes, an (image, text) pair), so equal inputs
    share a row, as they would share a vector.
    """

    def __init__(self, model: Model, table: Mapping[Hashable, np.ndarray | InputError]) -> None:
        self.model = model
        self.table = table
        self.space = model.space
        self.name = model.name
        self.dim = model.dim
        self.resolved = model.resolved  # what the collection records as the model's source

    def _batch(self, keys: list[Hashable], names: list[str]) -> Iterator[EmbeddingBatch]:
        rows, indices, failures = [], [], []
        for i, key in enumerate(keys):
            try:
                found = self.table[key]
            except KeyError:
                raise RuntimeError("an input reached the collection without being embedded first") from None
            if isinstance(found, InputError):
                failures.append(Failure(index=i, input=names[i], error=found))
            else:
                rows.append(found)
                indices.append(i)
        vectors = np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dim), dtype=np.float32)
        yield EmbeddingBatch(vectors, np.asarray(indices, dtype=np.int64), failures)

    def iter_texts(self, texts: Iterable[str], **_: Any) -> Iterator[EmbeddingBatch]:
        keys: list[Hashable] = list(texts)
        return self._batch(keys, [str(k)[:60] for k in keys])

    def iter_images(self, images: Iterable[bytes], **_: Any) -> Iterator[EmbeddingBatch]:
        keys: list[Hashable] = list(images)
        return self._batch(keys, ["<image bytes>"] * len(keys))

    def iter_pairs(self, images: Iterable[bytes], texts: Iterable[str], **_: Any) -> Iterator[EmbeddingBatch]:
        keys: list[Hashable] = [pair_key(i, t) for i, t in zip(images, texts)]
        return self._batch(keys, ["<image bytes> + text"] * len(keys))
