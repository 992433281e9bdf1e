"""Embedded vector stores a user would pick instead of crossmodal, driven the same way by ``bench/search.py``.

Each peer is built from the same vectors and metadata (``modality``, ``album``) and answers one query at
a time, unfiltered or with an equality filter on one metadata field, returning item numbers (the row
index in the vector matrix) read with each hit's metadata and distance, as crossmodal's search returns
hits with their metadata and scores (asked for ids alone, a peer could skip the per-hit reads that
crossmodal does). Indexes follow each project's documentation for a few hundred thousand
to a million vectors:

* Chroma: its default (and only) index, HNSW over cosine (M=16, ef_construction=100, ef_search=100),
  metadata in its SQLite file, which its query planner uses to pre-filter;
* LanceDB: ``IVF_HNSW_SQ`` over cosine with its default partitioning, plus a ``BITMAP`` scalar index
  on each filtered column (the documented choice for low-cardinality columns), filters applied
  before the vector search (``prefilter=True``, the default).

They need their own packages (``pip install chromadb lancedb``); ``bench/search.py`` skips a peer whose
package is missing and says so.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PEERS", "Peer"]


class Peer:
    """One peer store: ``build`` once, then ``open`` (again after a cache drop) and ``search``."""

    name = ""
    #: the packages it needs (imported before its RAM is measured, so their own size is not counted)
    modules: tuple[str, ...] = ()

    def __init__(self, path: Path) -> None:
        self.path = path

    def build(self, x: np.ndarray, modality: np.ndarray, album: np.ndarray) -> float:
        raise NotImplementedError

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def search(self, q: np.ndarray, k: int, field: str | None = None, value: str | None = None) -> list[int]:
        raise NotImplementedError


class ChromaPeer(Peer):
    name = "chroma"
    modules = ("chromadb",)

    def build(self, x: np.ndarray, modality: np.ndarray, album: np.ndarray) -> float:
        import chromadb

        t = time.perf_counter()
        client = chromadb.PersistentClient(path=str(self.path), settings=chromadb.Settings(anonymized_telemetry=False))
        col = client.create_collection("bench", configuration={"hnsw": {"space": "cosine"}})
        step = min(5_000, client.get_max_batch_size())
        for start in range(0, len(x), step):
            stop = min(len(x), start + step)
            col.add(ids=[str(i) for i in range(start, stop)], embeddings=x[start:stop],
                    metadatas=[{"modality": str(modality[i]), "album": str(album[i])} for i in range(start, stop)])
        build = time.perf_counter() - t
        del col, client
        self.close()
        return build

    def open(self) -> None:
        import chromadb

        self.client = chromadb.PersistentClient(path=str(self.path),
                                                settings=chromadb.Settings(anonymized_telemetry=False))
        self.col = self.client.get_collection("bench")

    def close(self) -> None:
        from chromadb.api.client import SharedSystemClient

        self.__dict__.pop("col", None)
        self.__dict__.pop("client", None)
        SharedSystemClient.clear_system_cache()
        gc.collect()

    def search(self, q: np.ndarray, k: int, field: str | None = None, value: str | None = None) -> list[int]:
        where: Any = None if field is None else {field: value}
        res = self.col.query(query_embeddings=q[None], n_results=k, where=where, include=["metadatas", "distances"])
        return [int(i) for i in res["ids"][0]]


class LancePeer(Peer):
    name = "lancedb"
    modules = ("lancedb", "pyarrow")

    def build(self, x: np.ndarray, modality: np.ndarray, album: np.ndarray) -> float:
        import lancedb
        import pyarrow as pa

        def batch(start: int, stop: int) -> Any:
            flat = pa.array(x[start:stop].reshape(-1), type=pa.float32())
            return pa.table({"id": pa.array(np.arange(start, stop), type=pa.int64()),
                             "modality": pa.array(modality[start:stop].tolist()),
                             "album": pa.array(album[start:stop].tolist()),
                             "vector": pa.FixedSizeListArray.from_arrays(flat, x.shape[1])})

        t = time.perf_counter()
        db = lancedb.connect(str(self.path))
        step = 100_000
        tbl = db.create_table("bench", data=batch(0, min(step, len(x))))
        for start in range(step, len(x), step):
            tbl.add(batch(start, min(len(x), start + step)))
        tbl.create_index(metric="cosine", index_type="IVF_HNSW_SQ")
        tbl.create_scalar_index("album", index_type="BITMAP")
        tbl.create_scalar_index("modality", index_type="BITMAP")
        build = time.perf_counter() - t
        del tbl, db
        gc.collect()
        return build

    def open(self) -> None:
        import lancedb

        self.db = lancedb.connect(str(self.path))
        self.tbl = self.db.open_table("bench")

    def close(self) -> None:
        self.__dict__.pop("tbl", None)
        self.__dict__.pop("db", None)
        gc.collect()

    def search(self, q: np.ndarray, k: int, field: str | None = None, value: str | None = None) -> list[int]:
        query = self.tbl.search(q).distance_type("cosine").limit(k).select(["id", "modality", "album", "_distance"])
        if field is not None:
            query = query.where(f"{field} = '{value}'", prefilter=True)
        return query.to_arrow()["id"].to_pylist()


PEERS: dict[str, type[Peer]] = {"chroma": ChromaPeer, "lancedb": LancePeer}
