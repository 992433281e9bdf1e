"""An in-memory store (``memory://``): exact search with numpy, nothing persisted.

For tests and throwaway notebooks. It is also the reference the contract
tests hold every other store to, so it is written to be obviously right
rather than fast.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import CollectionExists, CollectionNotFound, ConfigError
from .base import BackendBase, CollectionInfo, Record, StoreBase
from .filters import Selection, select

__all__ = ["MemoryCollection", "MemoryStore"]


class MemoryCollection(BackendBase):
    holds_token_vectors = True

    def __init__(self, info: CollectionInfo) -> None:
        self.info = info
        self._items: dict[str, Record] = {}
        self._lock = threading.RLock()

    def upsert(self, records: Sequence[Record]) -> None:
        with self._lock:
            for r in records:
                vec = np.array(r.vector, dtype=np.float32, copy=True)
                multi = None if r.multivector is None else np.array(r.multivector, dtype=np.float16, copy=True)
                self._items[r.id] = replace(r, vector=vec, metadata=dict(r.metadata), multivector=multi,
                                            sparse=None if r.sparse is None else dict(r.sparse))

    def replace(self, records: Sequence[Record], ids: Sequence[str]) -> int:
        with self._lock:
            self.upsert(records)
            return self.delete(ids)

    def delete(self, ids: Sequence[str] | None = None, selection: Selection | None = None) -> int:
        with self._lock:
            if ids is not None:
                gone = [i for i in dict.fromkeys(ids) if i in self._items]
            else:
                gone = [i for i, r in self._items.items() if select(r, selection)]
            for i in gone:
                del self._items[i]
            return len(gone)

    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[Record]:
        with self._lock:
            found = [self._items[i] for i in ids if i in self._items]
        return found if vectors else [r.without_vector() for r in found]

    def count(self, selection: Selection | None = None) -> int:
        with self._lock:
            return sum(1 for r in self._items.values() if select(r, selection))

    def query(self, vector: np.ndarray, top_k: int, selection: Selection | None = None) -> list[tuple[Record, float]]:
        with self._lock:
            chosen = [r for r in self._items.values() if select(r, selection)]
        if not chosen or top_k <= 0:
            return []
        matrix = np.stack([r.vector for r in chosen])  # type: ignore[misc]
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        order = sorted(range(len(chosen)), key=lambda i: (-float(scores[i]), chosen[i].id))[:top_k]
        return [(chosen[i].without_vector(), float(scores[i])) for i in order]

    def scan(self, selection: Selection | None = None, *, vectors: bool = False) -> Iterator[Record]:
        with self._lock:
            chosen = [r for _, r in sorted(self._items.items()) if select(r, selection)]
        for r in chosen:
            yield r if vectors else r.without_vector()


class MemoryStore(StoreBase):
    """Collections in a dict; gone when the process ends."""

    kind = "an in-memory store"

    def __init__(self, uri: str = "memory://", **options: Any) -> None:
        if options:
            raise ConfigError(f"the in-memory store takes no options, got {', '.join(sorted(options))}")
        self.uri = uri
        self._collections: dict[str, MemoryCollection] = {}

    def create_collection(self, info: CollectionInfo) -> MemoryCollection:
        if info.name in self._collections:
            raise CollectionExists(f"collection {info.name!r} already exists in {self.uri}")
        col = self._collections[info.name] = MemoryCollection(info)
        return col

    def open_collection(self, name: str) -> MemoryCollection:
        try:
            return self._collections[name]
        except KeyError:
            raise CollectionNotFound(f"no collection {name!r} in {self.uri}") from None

    def list_collections(self) -> list[CollectionInfo]:
        return [c.info for _, c in sorted(self._collections.items())]

    def update_collection(self, info: CollectionInfo) -> None:
        self.open_collection(info.name).info = info

    def drop_collection(self, name: str) -> None:
        self.open_collection(name)
        del self._collections[name]
