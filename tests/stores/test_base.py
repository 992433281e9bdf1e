"""The protocol's defaults (BackendBase, StoreBase): what a new backend gets without writing it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from crossmodal import Record
from crossmodal.stores.base import BackendBase, CollectionBackend, CollectionInfo, StoreBase, VectorStore
from crossmodal.stores.filters import Selection
from crossmodal.stores.memory import MemoryCollection, MemoryStore
from crossmodal.testing.fake import fake_model


class CoreOnly(BackendBase):
    """A backend that writes only the six core methods (delegating to the memory store), logging the calls."""

    def __init__(self, info: CollectionInfo) -> None:
        self.info = info
        self.inner = MemoryCollection(info)
        self.calls: list[str] = []

    def upsert(self, records: Sequence[Record]) -> None:
        self.calls.append("upsert")
        self.inner.upsert(records)

    def delete(self, ids: Sequence[str] | None = None, selection: Selection | None = None) -> int:
        self.calls.append("delete")
        return self.inner.delete(ids, selection)

    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[Record]:
        return self.inner.get(ids, vectors=vectors)

    def count(self, selection: Selection | None = None) -> int:
        return self.inner.count(selection)

    def query(self, vector: np.ndarray, top_k: int, selection: Selection | None = None) -> list[tuple[Record, float]]:
        return self.inner.query(vector, top_k, selection)

    def scan(self, selection: Selection | None = None, *, vectors: bool = False) -> Iterator[Record]:
        return self.inner.scan(selection, vectors=vectors)


class CoreStore(StoreBase):
    kind = "a test store"

    def __init__(self) -> None:
        self.uri = "core://"
        self.cols: dict[str, CoreOnly] = {}

    def create_collection(self, info: CollectionInfo) -> CoreOnly:
        self.cols[info.name] = CoreOnly(info)
        return self.cols[info.name]

    def open_collection(self, name: str) -> CoreOnly:
        return self.cols[name]

    def list_collections(self) -> list[CollectionInfo]:
        return [c.info for _, c in sorted(self.cols.items())]

    def update_collection(self, info: CollectionInfo) -> None:
        self.cols[info.name].info = info

    def drop_collection(self, name: str) -> None:
        del self.cols[name]


def _records(n: int, start: int = 0) -> list[Record]:
    rng = np.random.default_rng(start)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return [Record(f"r{start + i}", "text", f"ref {start + i}", x[i]) for i in range(n)]


def test_a_backend_writing_the_core_gets_the_rest_and_satisfies_the_protocols() -> None:
    store = CoreStore()
    col = store.create_collection(CollectionInfo("c", fake_model(dim=8).space))
    assert isinstance(col, CollectionBackend) and isinstance(store, VectorStore)
    col.upsert(_records(5))
    # replace: the default upserts first, then deletes (a crash in between leaves both, never neither)
    assert col.replace(_records(2, start=10), ["r0", "r1", "nope"]) == 2
    assert col.calls == ["upsert", "upsert", "delete"]
    assert sorted(r.id for r in col.scan()) == ["r10", "r11", "r2", "r3", "r4"]
    assert col.replace([], []) == 0 and col.calls[-1] == "upsert"  # nothing to delete: no delete call
    with col.bulk_load():  # a no-op context
        col.upsert(_records(3, start=20))
    assert col.count() == 8
    assert col.declare_indexes(["album"]) is None and col.maintain() is None and col.count() == 8
    # the store's defaults: not shared, a check that counts, a close that does nothing
    assert store.shared is False and CoreStore.shared is False and store.kind == "a test store"
    report = store.check()
    assert report.clean and report.collections == {"c": 8} and not report.notes
    store.close()


def test_a_backend_missing_a_core_method_cannot_be_made() -> None:
    class NoQuery(BackendBase):
        def upsert(self, records): ...
        def delete(self, ids=None, selection=None): ...
        def get(self, ids, *, vectors=False): ...
        def count(self, selection=None): ...
        def scan(self, selection=None, *, vectors=False): ...

    with pytest.raises(TypeError, match="query"):
        NoQuery()  # type: ignore[abstract]


def test_the_memory_store_keeps_its_atomic_replace_and_uses_the_default_check() -> None:
    store = MemoryStore()
    b = store.create_collection(CollectionInfo("b", fake_model(dim=8).space))
    a = store.create_collection(CollectionInfo("a", fake_model(dim=8).space))
    a.upsert(_records(3))
    assert type(a).replace is not BackendBase.replace
    assert a.replace(_records(1, start=7), ["r0"]) == 1 and a.count() == 3 and b.count() == 0
    assert list(store.check().collections.items()) == [("a", 3), ("b", 0)]
