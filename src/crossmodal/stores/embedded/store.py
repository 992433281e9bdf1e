"""The embedded store (the default): one directory, SQLite in WAL mode plus derived HNSW files.

::

    STORE/
      store.db, store.db-wal, store.db-shm   items, metadata, vectors: the single source of truth
      index/c<cid>-<modality>-<id>.usearch   HNSW per collection and modality, derived from store.db

Every write is one SQLite transaction, so a killed process loses at most the
batch it was writing; the HNSW files are caches, caught up from SQLite before
they answer (see :mod:`~crossmodal.stores.embedded.collection` for the search
plan and :mod:`~crossmodal.stores.embedded.derived` for the caches). Readers
in other processes (and threads) run while one process writes; it is one
machine's store with one writer at a time, so it is not ``shared``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ...errors import CollectionExists, CollectionNotFound, ConfigError, StoreError
from ..base import CheckReport, CollectionInfo, StoreBase
from . import keywords
from .check import check_store
from .collection import EmbeddedCollection
from .database import Database
from .derived import record_digests
from .fanout import Fanout
from .options import EmbeddedOptions

__all__ = ["EmbeddedStore"]


class EmbeddedStore(StoreBase):
    """Collections in one directory (see the module docstring); ``options`` are :class:`EmbeddedOptions`
    (as an object, or as keyword arguments)."""

    kind = "the embedded store"

    def __init__(self, path: str | Path, *, options: EmbeddedOptions | None = None, **keywords: Any) -> None:
        self.path = Path(path).expanduser().absolute()
        self.uri = str(self.path)
        if options is not None and keywords:
            raise ConfigError("give the store options as an EmbeddedOptions object or as keyword arguments, not both")
        self.options = options if options is not None else EmbeddedOptions.from_uri(self.uri, **keywords)
        self.db = Database(self.path, durable=self.options.durable, read_ahead=self.options.read_ahead)
        self.index_dir = self.db.index_dir
        self.fanout = Fanout(self.options.threads)
        self._lock = threading.Lock()
        self._collections: dict[int, EmbeddedCollection] = {}
        self._closed = False
        record_digests(self.db.read, self.db.write, self.index_dir)

    def __repr__(self) -> str:
        return f"<EmbeddedStore {self.uri}>"

    # -- collections ----------------------------------------------------------------------------------------------------

    def _collection(self, cid: int, info: CollectionInfo) -> EmbeddedCollection:
        with self._lock:
            col = self._collections.get(cid)
            if col is None:
                col = self._collections[cid] = EmbeddedCollection(self.db, self.options, cid, info, self.fanout)
            col.info = info
            return col

    def create_collection(self, info: CollectionInfo) -> EmbeddedCollection:
        try:
            with self.db.write() as conn:
                cid = conn.execute("INSERT INTO collections (name, info) VALUES (?, ?)",
                                   (info.name, json.dumps(info.to_dict()))).lastrowid
                keywords.create(conn, int(cid or 0))
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise CollectionExists(f"collection {info.name!r} already exists in {self.uri}") from None
            raise
        return self._collection(int(cid or 0), info)

    def open_collection(self, name: str) -> EmbeddedCollection:
        with self.db.read() as conn:
            row = conn.execute("SELECT cid, info FROM collections WHERE name=?", (name,)).fetchone()
        if row is None:
            raise CollectionNotFound(f"no collection {name!r} in {self.uri}")
        return self._collection(int(row[0]), CollectionInfo.from_dict(json.loads(row[1])))

    def list_collections(self) -> list[CollectionInfo]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT info FROM collections ORDER BY name").fetchall()
        return [CollectionInfo.from_dict(json.loads(r[0])) for r in rows]

    def update_collection(self, info: CollectionInfo) -> None:
        col = self.open_collection(info.name)
        if col.info.space != info.space:
            raise StoreError("a collection's space cannot change; create a new collection for another model")
        with self.db.write() as conn:
            conn.execute("UPDATE collections SET info=? WHERE cid=?", (json.dumps(info.to_dict()), col.cid))
        col.info = info

    def drop_collection(self, name: str) -> None:
        col = self.open_collection(name)
        with self.db.write() as conn:
            files = [f for (f,) in conn.execute("SELECT file FROM ann WHERE cid=? UNION ALL "
                                                "SELECT file FROM keysets WHERE cid=?", (col.cid, col.cid))]
            for table in ("attrs", "items", "removed", "counts", "ann", "keysets", "attr_log", "sparse", "multivec", "collections"):
                conn.execute(f"DELETE FROM {table} WHERE cid=?", (col.cid,))
            keywords.drop(conn, col.cid)
        for f in files:
            (self.index_dir / f).unlink(missing_ok=True)
        with self._lock:
            self._collections.pop(col.cid, None)

    def check(self, *, repair: bool = True) -> CheckReport:
        """SQLite's integrity, then each collection's counts, rows and HNSW files (see
        :mod:`~crossmodal.stores.embedded.check`)."""
        return check_store(self.db, self.list_collections, self.open_collection, repair=repair)

    def close(self) -> None:
        """Save HNSW views that lag behind this process's writes, then close every connection."""
        if self._closed:
            return
        try:
            for col in list(self._collections.values()):
                try:
                    col.flush()
                except CollectionNotFound:
                    pass
        finally:
            self._closed = True
            self.fanout.close()
            self.db.close()
