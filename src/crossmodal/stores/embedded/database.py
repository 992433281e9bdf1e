"""The embedded store's SQLite database: one connection per thread, read and write transactions, errors mapped.

Every part of the embedded store (collections, derived indexes, ``store
check``) reaches SQLite through one :class:`Database`, so each transaction is
a ``with db.read()`` / ``with db.write()`` block and SQLite's errors become
crossmodal's in one place (:func:`mapped`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ...errors import StoreCorrupt, StoreError, StoreUnavailable
from .pages import RowPages
from .sqlite import connect, init_schema

__all__ = ["DB_NAME", "INDEX_DIR", "Database", "mapped"]

DB_NAME = "store.db"
INDEX_DIR = "index"


class Database:
    """``store.db`` in the store directory ``path`` (created, with its ``index/`` folder, if missing)."""

    def __init__(self, path: Path, *, durable: bool = True, read_ahead: bool = False) -> None:
        self.path = path
        self.uri = str(path)
        self.durable = durable
        if self.path.exists() and not self.path.is_dir():
            raise StoreUnavailable(f"store path {self.path} is a file; an embedded store is a directory")
        try:
            (self.path / INDEX_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the store directory {self.path}: {exc}") from exc
        self.index_dir = self.path / INDEX_DIR
        self.db_path = self.path / DB_NAME
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        init_schema(self._conn())
        #: read-ahead hints for the rows a search reads by key (None: off)
        self.pages = RowPages(self.db_path) if read_ahead else None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreUnavailable(f"store {self.uri} is closed")
            conn = connect(self.db_path, durable=self.durable)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _txn(self, begin: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute(begin)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"store {self.uri} is busy or unreadable: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            conn.execute("ROLLBACK")
            raise StoreUnavailable(f"cannot commit to store {self.uri}: {exc}") from exc

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot, concurrent with a writer."""
        try:
            with self._txn("BEGIN") as conn:
                yield conn
        except sqlite3.DatabaseError as exc:
            raise mapped(exc, self.uri) from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (one writer at a time across processes; others wait up to 30 s)."""
        try:
            with self._txn("BEGIN IMMEDIATE") as conn:
                yield conn
        except sqlite3.DatabaseError as exc:
            raise mapped(exc, self.uri) from exc

    def ahead(self, conn: sqlite3.Connection, keys: Sequence[int]) -> None:
        """Ask for the pages of the items rows with ``keys`` when they are not cached (see :class:`RowPages`)."""
        if self.pages is not None:
            self.pages.ahead(conn, keys)

    def close(self) -> None:
        """Close every thread's connection; later transactions raise StoreUnavailable."""
        self._closed = True
        if self.pages is not None:
            self.pages.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def mapped(exc: sqlite3.DatabaseError, uri: str) -> StoreError:
    """A SQLite error as crossmodal's."""
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreError(f"store {uri}: {text}")  # a constraint; callers that expect one map it further
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in text or "busy" in text:
            return StoreUnavailable(f"store {uri} is locked by another writer (waited 30 s): {text}")
        return StoreUnavailable(f"store {uri}: {text}")
    return StoreCorrupt(f"store {uri} is damaged: {text}; run `crossmodal store check`")
