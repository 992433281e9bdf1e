"""Adding items with vectors the micro-batcher already made.

The store keeps one thread, and a collection embeds what it adds; embedding
32 large images there would hold every other store call (every search) for
as long. So the service embeds the items of an add request through the
micro-batcher first (fairly, among the other requests), then hands the
collection a :class:`PrecomputedModel`: it answers the collection's embed
calls from those vectors, so ids, content hashes, skipping what is stored
already and the per-item failures stay the collection's own logic, and the
store thread only writes. Items the collection holds already are not
embedded first (``Collection.needs_embedding``); should one change between
that check and the write (another request wrote it), the model embeds it
here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
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

    #: the text outputs beside the dense vector (BGE-M3's sparse and multi-vectors): made by the model itself,
    #: so a model that has them gives them to the items added here as it does everywhere else
    TOKEN_OUTPUTS = ("embed_sparse", "embed_multivectors", "embed_token_outputs")

    def __getattr__(self, name: str) -> Any:
        if name in PrecomputedModel.TOKEN_OUTPUTS:
            return getattr(self.model, name)  # AttributeError when the model has no such output
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _batch(self, keys: list[Hashable], names: list[str],
               embed: Callable[[list[int]], Any]) -> Iterator[EmbeddingBatch]:
        rows: dict[int, np.ndarray] = {}
        failures = []
        missing = [i for i, key in enumerate(keys) if key not in self.table]
        if missing:  # stored when checked, changed since: embedded now
            made = embed(missing)
            for position, vec in zip(made.indices.tolist(), made.vectors):
                rows[missing[position]] = vec
            failures += [Failure(index=missing[f.index], input=f.input, error=f.error) for f in made.failures]
        for i, key in enumerate(keys):
            found = self.table.get(key)
            if isinstance(found, InputError):
                failures.append(Failure(index=i, input=names[i], error=found))
            elif found is not None:
                rows[i] = found
        indices = sorted(rows)
        vectors = np.stack([rows[i] for i in indices]).astype(np.float32) if rows else \
            np.zeros((0, self.dim), dtype=np.float32)
        yield EmbeddingBatch(vectors, np.asarray(indices, dtype=np.int64), sorted(failures, key=lambda f: f.index))

    def iter_texts(self, texts: Iterable[str], **_: Any) -> Iterator[EmbeddingBatch]:
        keys: list[Hashable] = list(texts)
        return self._batch(keys, [str(k)[:60] for k in keys],
                           lambda idx: self.model.embed_texts([keys[i] for i in idx], on_error="skip"))

    def iter_images(self, images: Iterable[bytes], **_: Any) -> Iterator[EmbeddingBatch]:
        keys: list[Hashable] = list(images)
        return self._batch(keys, ["<image bytes>"] * len(keys),
                           lambda idx: self.model.embed_images([keys[i] for i in idx], on_error="skip", workers=0))

    def iter_pairs(self, images: Iterable[bytes], texts: Iterable[str], *, image_weight: float | None = None,
                   **_: Any) -> Iterator[EmbeddingBatch]:
        pairs = list(zip(images, texts))
        keys: list[Hashable] = [pair_key(i, t) for i, t in pairs]
        return self._batch(keys, ["<image bytes> + text"] * len(keys),
                           lambda idx: self.model.embed_pairs([pairs[i][0] for i in idx], [pairs[i][1] for i in idx],
                                                              image_weight=image_weight, on_error="skip", workers=0))
