"""One collection of the embedded store: its writes, reads and search plan.

Every write is one SQLite transaction, so a killed process loses at most the
batch it was writing. The HNSW files are caches: each records the state it
reflects, is caught up from SQLite before it answers, and is rebuilt if it is
missing or unreadable (see :mod:`~crossmodal.stores.embedded.derived`), so the two
cannot disagree. Readers in other processes (and threads) run while one
process writes.

Search plan, per modality asked for:

* a metadata filter first becomes the sorted keys of the modality's items it
  passes, from the key-set index (:mod:`~crossmodal.stores.embedded.keysets`,
  derived from SQLite like the HNSW files); an empty set skips the modality;
* at most ``exact_limit`` items (default 10,000): exact search over an
  in-memory matrix (restricted to the key set), equal to numpy;
* more, with a key set small enough to score in full (``EXACT_SET``, or
  fewer keys than the HNSW candidates it would take): every key in it is a
  candidate, scored from the HNSW index's in-memory copies;
* otherwise the modality's HNSW index, asked for 2-3x more candidates than
  needed (with a filter, more in proportion to how many it drops, each tested
  for membership in the key set, widening until enough pass);
* then candidates that could still reach the top are rescored with their
  exact stored vectors. Which could: in a space of unit vectors, usearch's
  own scores tell, with one bound on their error worked out from the query
  alone (:meth:`AnnView.search_error`); in a raw space, or for a key set
  scored in full, each candidate's copy in the index, with its own bound
  (:meth:`AnnView.score_bounds`).

Scores are always computed from the vectors in SQLite, so an approximate
candidate list can only cost recall, never a wrong score or a deleted item.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np

from ...errors import CollectionNotFound
from ..base import MODALITIES, BackendBase, CollectionInfo, Record
from ..filters import Selection
from . import keywords as fts
from . import tokens
from .database import Database
from .derived import Derived, SearchStates, read_snapshot, vectors_of
from .fanout import Fanout
from .keysets import KeySets, log_changed
from .keysets import members as _members
from .options import EmbeddedOptions
from .sqlite import COLUMNS, attr_rows, chunks, filter_sql, marks, pack_metadata, record_of, rows_by_keys
from .views import AnnView, ExactView, dot, kth_largest, query_extent

__all__ = ["CLOSE_LAG", "EmbeddedCollection"]

#: a filter's key set (per modality) is scored in full rather than searched in the HNSW graph while it holds at most
#: EXACT_SET keys, or EXACT_PER_CANDIDATE keys per candidate the widened graph search would ask for: scoring a key
#: reads its vector from the index (about 4.5 us a key at a million items), a widened search costs about 2.7 us
#: per candidate asked for (bench/filter_plans.py measures both)
EXACT_SET = 1_000
EXACT_PER_CANDIDATE = 0.6
#: on close, HNSW views lagging their files by fewer changes are left for readers to catch up (a fraction of a second)
CLOSE_LAG = 1_000


class EmbeddedCollection(BackendBase):
    """One collection's items in the embedded store (see the module docstring for the search plan)."""

    holds_token_vectors = True

    def __init__(self, db: Database, options: EmbeddedOptions, cid: int, info: CollectionInfo,
                 fanout: Fanout | None = None) -> None:
        self.db = db
        self.fanout = fanout or Fanout(1)
        self.options = options
        self.cid = cid
        self.info = info
        self.dim = info.space.dim
        ann = options.ann_params
        self._derived = {m: Derived(cid, m, self.dim, db.index_dir, options.exact_limit, ann) for m in MODALITIES}
        self._keysets = KeySets(cid, db.index_dir)
        self._search_state = SearchStates(cid)
        self._written_since_check = 0
        self._dirty: set[str] = set()
        #: the largest norm of a stored vector, where the space guarantees one (unit vectors, with float32 slack)
        self._norm = 1.0 + 1e-3 if info.space.normalized else None
        with db.read() as conn:
            indexed = fts.exists(conn, cid)
        if not indexed:  # a collection from before keyword search: index its items now, once
            with db.write() as conn:
                fts.ensure(conn, cid, info.text_keys)

    # -- helpers ----------------------------------------------------------------------------------------------------

    def _alive(self, conn: sqlite3.Connection) -> None:
        if conn.execute("SELECT 1 FROM collections WHERE cid=?", (self.cid,)).fetchone() is None:
            raise CollectionNotFound(f"collection {self.info.name!r} was deleted from {self.db.uri}")

    def _counts(self, conn: sqlite3.Connection) -> dict[str, int]:
        return dict(conn.execute("SELECT modality, n FROM counts WHERE cid=?", (self.cid,)).fetchall())

    def _where(self, selection: Selection | None) -> tuple[str, list[Any]]:
        """SQL conditions on ``items`` (as `` AND ...``) for a selection."""
        if selection is None:
            return "", []
        sql, params = "", []
        if selection.modalities is not None:
            sql += f" AND modality IN ({marks(len(selection.modalities))})"
            params += list(selection.modalities)
        if selection.where is not None:
            fsql, fparams = filter_sql(selection.where, self.cid)
            sql += f" AND key IN ({fsql})"
            params += fparams
        return sql, params

    # -- writing ----------------------------------------------------------------------------------------------------

    def upsert(self, records: Sequence[Record]) -> None:
        self.replace(records, ())

    def replace(self, records: Sequence[Record], ids: Sequence[str]) -> int:
        """Upsert and delete in one SQLite transaction (see :meth:`CollectionBackend.replace`)."""
        latest = {r.id: r for r in records}  # the last record of an id wins, as if upserted one by one
        doomed = [i for i in dict.fromkeys(ids) if i not in latest]
        if not latest and not doomed:
            return 0
        delta: Counter[str] = Counter()
        with self.db.write() as conn:
            self._alive(conn)
            if latest:
                self._write_rows(conn, latest, delta)
            gone = self._keys_of(conn, doomed)
            if gone:
                self._remove(conn, gone)
                delta.subtract(Counter(m for _, m in gone))
            self._bump(conn, delta)
        self._after_write(len(latest), delta)
        return len(gone)

    def _keys_of(self, conn: sqlite3.Connection, ids: Sequence[str]) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for chunk in chunks(ids):
            found += conn.execute(f"SELECT key, modality FROM items WHERE cid=? AND id IN ({marks(len(chunk))})",
                                  (self.cid, *chunk)).fetchall()
        return found

    def _write_rows(self, conn: sqlite3.Connection, latest: dict[str, Record], delta: Counter[str]) -> None:
        existing: dict[str, tuple[int, str, bytes]] = {}
        ids = list(latest)
        for chunk in chunks(ids):
            for key, id_, modality, vector in conn.execute(
                    f"SELECT key, id, modality, vector FROM items WHERE cid=? AND id IN ({marks(len(chunk))})",
                    (self.cid, *chunk)):
                existing[id_] = (key, modality, vector)
        for r in latest.values():
            blob = np.ascontiguousarray(r.vector, dtype="<f4").tobytes()
            meta = pack_metadata(r.metadata)
            old = existing.get(r.id)
            if old is not None and old[1] == r.modality and old[2] == blob:
                # same vector: update in place, so the key (and every derived index) stays valid
                conn.execute("UPDATE items SET reference=?, text=?, content_hash=?, source=?, stamp=?, metadata=? "
                             "WHERE key=?", (r.reference, r.text, r.content_hash, r.source, r.stamp, meta, old[0]))
                conn.execute("DELETE FROM attrs WHERE key=?", (old[0],))
                conn.executemany("INSERT INTO attrs VALUES (?, ?, ?, ?, ?)", attr_rows(old[0], self.cid, r.metadata))
                log_changed(conn, self.cid, [old[0]])
                fts.write(conn, self.cid, old[0], self._terms(r))
                tokens.write(conn, self.cid, old[0], r.sparse, r.multivector)
                continue
            if old is not None:
                self._remove(conn, [(old[0], old[1])])
                delta[old[1]] -= 1
            key = conn.execute(
                "INSERT INTO items (cid, id, modality, reference, text, content_hash, source, stamp, metadata, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.cid, r.id, r.modality, r.reference, r.text, r.content_hash, r.source, r.stamp, meta, blob)
            ).lastrowid
            conn.executemany("INSERT INTO attrs VALUES (?, ?, ?, ?, ?)", attr_rows(int(key or 0), self.cid, r.metadata))
            fts.write(conn, self.cid, int(key or 0), self._terms(r))
            if r.sparse or r.multivector is not None:
                tokens.write(conn, self.cid, int(key or 0), r.sparse, r.multivector)
            delta[r.modality] += 1

    def _terms(self, r: Record) -> str:
        return fts.terms_of(r.modality, r.reference, r.text, r.metadata, self.info.text_keys)

    def _remove(self, conn: sqlite3.Connection, gone: Sequence[tuple[int, str]]) -> None:
        for chunk in chunks(gone):
            keys = [k for k, _ in chunk]
            conn.execute(f"DELETE FROM items WHERE key IN ({marks(len(keys))})", keys)
            conn.execute(f"DELETE FROM attrs WHERE key IN ({marks(len(keys))})", keys)
            log_changed(conn, self.cid, keys)
            fts.remove(conn, self.cid, keys)
            tokens.remove(conn, keys)
            conn.executemany("INSERT INTO removed (cid, modality, key) VALUES (?, ?, ?)",
                             [(self.cid, m, k) for k, m in chunk])

    def _bump(self, conn: sqlite3.Connection, delta: Counter[str]) -> None:
        conn.executemany(
            "INSERT INTO counts VALUES (?, ?, ?) ON CONFLICT (cid, modality) DO UPDATE SET n = n + excluded.n",
            [(self.cid, m, n) for m, n in delta.items() if n])
        conn.execute("UPDATE collections SET version = version + 1 WHERE cid=?", (self.cid,))

    def _after_write(self, n: int, delta: Counter[str]) -> None:
        """Every so often, bring large HNSW views up to date and save them, so a crash leaves little to catch up."""
        self._dirty.update(delta)
        self._written_since_check += n
        if self._written_since_check >= self.options.save_every:
            self._written_since_check = 0
            self._sync()

    def delete(self, ids: Sequence[str] | None = None, selection: Selection | None = None) -> int:
        with self.db.write() as conn:
            self._alive(conn)
            if ids is not None:
                gone = self._keys_of(conn, list(dict.fromkeys(ids)))
            else:
                sql, params = self._where(selection)
                gone = conn.execute(f"SELECT key, modality FROM items WHERE cid=?{sql}", (self.cid, *params)).fetchall()
            if gone:
                self._remove(conn, gone)
                delta = Counter({m: -c for m, c in Counter(m for _, m in gone).items()})
                self._bump(conn, delta)
                self._dirty.update(delta)
        return len(gone)

    # -- reading ----------------------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[Record]:
        found: dict[str, Record] = {}
        with self.db.read() as conn:
            self._alive(conn)
            unique = list(dict.fromkeys(ids))
            keys: dict[str, int] = {}
            for chunk in chunks(unique):
                for row in conn.execute(f"SELECT {COLUMNS}, vector FROM items WHERE cid=? AND id IN "
                                        f"({marks(len(chunk))})", (self.cid, *chunk)):
                    found[row[1]] = record_of(row, self.dim, vectors)
                    keys[row[1]] = row[0]
            if vectors:
                found = self._with_tokens(conn, found, keys)
        return [found[i] for i in ids if i in found]

    @staticmethod
    def _with_tokens(conn: sqlite3.Connection, found: dict[str, Record], keys: dict[str, int]) -> dict[str, Record]:
        sparse, multi = tokens.read(conn, list(keys.values()))
        if not sparse and not multi:
            return found
        return {i: replace(r, sparse=sparse.get(keys[i]), multivector=multi.get(keys[i])) for i, r in found.items()}

    def count(self, selection: Selection | None = None) -> int:
        with self.db.read() as conn:
            self._alive(conn)
            if selection is None or selection.where is None:
                counts = self._counts(conn)
                mods = MODALITIES if selection is None or selection.modalities is None else selection.modalities
                return sum(counts.get(m, 0) for m in mods)
            sql, params = self._where(selection)
            return int(conn.execute(f"SELECT count(*) FROM items WHERE cid=?{sql}", (self.cid, *params)).fetchone()[0])

    def scan(self, selection: Selection | None = None, *, vectors: bool = False) -> Iterator[Record]:
        sql, params = self._where(selection)
        after = ""
        while True:  # keyset pages, each its own short read, so a long scan never blocks writers or checkpoints
            with self.db.read() as conn:
                self._alive(conn)
                rows = conn.execute(f"SELECT {COLUMNS}, {'vector' if vectors else 'NULL'} FROM items WHERE cid=? "
                                    f"AND id>?{sql} ORDER BY id LIMIT 1000", (self.cid, after, *params)).fetchall()
                page = {row[1]: record_of(row, self.dim, vectors) for row in rows}
                if vectors and rows:
                    page = self._with_tokens(conn, page, {row[1]: row[0] for row in rows})
            if not rows:
                return
            yield from page.values()
            after = rows[-1][1]

    # -- searching ----------------------------------------------------------------------------------------------------

    def query(self, vector: np.ndarray, top_k: int, selection: Selection | None = None) -> list[tuple[Record, float]]:
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        where, modalities = (selection.where, selection.modalities) if selection else (None, None)
        # what each view's bound on usearch's errors needs of the query, worked out once and before the graph
        # searches (which leave the CPU's caches cold for whatever follows them)
        bound = None if self._norm is None else (self._norm, query_extent(q))
        with self.db.read() as conn, ExitStack() as held:
            counts, snap, recorded = self._search_state(conn)
            if not counts:  # empty, or deleted: only then is it worth a query to tell which
                self._alive(conn)
            if where is not None:
                held.enter_context(self._keysets.lock)
            keysets = None if where is None else self._keysets.current(conn)
            jobs = []  # (size, job)
            for m in modalities or MODALITIES:  # (locks always taken in this order, and held together: no deadlock)
                n = counts.get(m, 0)
                allowed = None if keysets is None or where is None or n == 0 else keysets.keys(where, m)
                if n == 0 or (allowed is not None and len(allowed) == 0):
                    continue
                derived = self._derived[m]
                held.enter_context(derived.lock)  # (until every view is searched: the searches may run at once)
                view = derived.current(conn, n, snap, recorded)
                jobs.append((len(view), partial(self._candidates, view, q, top_k, allowed, bound)))
            found = self.fanout.run(jobs)
            held.close()
            hits = self._fetch(conn, found, top_k, q)
        for m in MODALITIES:  # a reader that had to catch up a lot saves its work for the next process
            self._derived[m].persist(self.db.write)
        return hits

    def _candidates(self, view: AnnView | ExactView, q: np.ndarray, top_k: int, allowed: np.ndarray | None,
                    bound: tuple[float, Any] | None) -> tuple[np.ndarray, np.ndarray, Any]:
        """One view's candidates: (keys, approximate scores, how far each score may be off: each view its own
        bound, as a file keeps the precision it was saved in, whatever the options)."""
        if not isinstance(view, AnnView):
            return (*view.search(q, top_k, allowed), 0.0)
        keys, approx = self._ann_candidates(view, q, top_k, allowed)
        error = None if approx is None or bound is None else view.search_error(q, *bound)
        return (keys, approx, error) if approx is not None and error is not None else (keys, *view.score_bounds(keys, q))

    def keyword(self, terms: Sequence[str], top_k: int, selection: Selection | None = None
                ) -> list[tuple[Record, float]]:
        """BM25 over the collection's FTS5 table (see :mod:`~crossmodal.stores.embedded.keywords`)."""
        if top_k <= 0 or not terms:
            return []
        sql, params = self._where(selection)
        with self.db.read() as conn:
            self._alive(conn)
            found = fts.search(conn, self.cid, terms, top_k, sql, params)
            return self._records_of(conn, found)

    def sparse_query(self, query: Mapping[int, float], top_k: int, selection: Selection | None = None
                     ) -> list[tuple[Record, float]]:
        """The sparse dot product from the inverted index in SQLite (see :mod:`~crossmodal.stores.embedded.tokens`)."""
        if top_k <= 0 or not query:
            return []
        sql, params = self._where(selection)
        with self.db.read() as conn:
            self._alive(conn)
            found = tokens.search(conn, self.cid, query, top_k, sql, params)
            return self._records_of(conn, found)

    def multivectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        with self.db.read() as conn:
            self._alive(conn)
            keys = dict(self._id_keys(conn, ids))
            multi = tokens.read_multivectors(conn, list(keys.values()))
        return {i: multi[k].astype(np.float32) for i, k in keys.items() if k in multi}

    def _id_keys(self, conn: sqlite3.Connection, ids: Sequence[str]) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        for chunk in chunks(list(dict.fromkeys(ids))):
            found += conn.execute(f"SELECT id, key FROM items WHERE cid=? AND id IN ({marks(len(chunk))})",
                                  (self.cid, *chunk)).fetchall()
        return found

    def _records_of(self, conn: sqlite3.Connection, found: list[tuple[int, float]]) -> list[tuple[Record, float]]:
        rows = {}
        for chunk in chunks([k for k, _ in found]):
            for row in conn.execute(f"SELECT {COLUMNS}, NULL FROM items WHERE key IN ({marks(len(chunk))})", chunk):
                rows[row[0]] = row
        return [(record_of(rows[k], self.dim, False), s) for k, s in found if k in rows]

    def _ann_candidates(self, view: AnnView, q: np.ndarray, top_k: int, allowed: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """HNSW candidates and their approximate scores; with a filter's key set, every allowed key when the set
        is small enough to score (from the index's own copies, in memory: no scores yet), else HNSW candidates
        tested for membership in the set, asking for more in proportion to how many the filter drops till enough pass.

        usearch's Python API has no predicate for its graph search (``Index.search`` takes no filter), so the
        filter cannot steer the traversal itself; the widening below is the next best.
        """
        want = max(2 * top_k, top_k + 20)
        if allowed is None:
            return view.search(q, want)  # (which asks for at most what the view holds)
        # a widened search ranks with a beam of at least k (ten times the unfiltered one at a 10% filter), so its
        # candidates that pass are already nearly in exact order and fewer spares are needed (bench/filter_plans.py)
        want = top_k + max(5, top_k // 2)
        fraction = len(allowed) / max(len(view), 1)
        k = int(min(len(view), np.ceil(1.5 * want / max(fraction, 1e-9))))
        if len(allowed) <= max(EXACT_SET, EXACT_PER_CANDIDATE * k):
            return allowed, None
        while True:
            keys, scores = view.search(q, k)
            member = _members(allowed, keys)
            kept = keys[member]
            if len(kept) >= want or k >= len(view):
                return kept, scores[member]
            passed = max(len(kept), 1) / max(len(keys), 1)
            k = int(min(len(view), max(2 * k, np.ceil(1.5 * want / passed))))

    def _fetch(self, conn: sqlite3.Connection, found: list[tuple[np.ndarray, np.ndarray, Any]], top_k: int,
               q: np.ndarray) -> list[tuple[Record, float]]:
        """The best ``top_k`` candidates (ties by id) by exact score, as records.

        Candidates come with scores that may be off by a bound (from an HNSW index's stored precision: one for
        all, see :meth:`AnnView.search_error`, or one each, see :meth:`AnnView.score_bounds`; 0 for exact
        views). Read from SQLite first and rescored with their exact stored vectors: every candidate within one
        bound of the ``top_k``-th best score (the ``top_k`` best and the few that could most likely overtake them).
        The ``top_k``-th best of those exact scores is a bar that ``top_k`` candidates reach, so of the rest only
        those whose best possible score reaches it can make the cut, and only they are read then: at a million
        items, 8% of searches read any (``bench/search_layers.py``), so a search nearly always reads its rows in
        one statement, and each row not read is a page-cache miss avoided.
        """
        if not found:
            return []
        keys = np.concatenate([f[0] for f in found]).astype(np.int64, copy=False)
        scores = np.concatenate([f[1] for f in found]).astype(np.float64, copy=False)
        bounds = [f[2] for f in found]
        error: float | np.ndarray
        if not any(isinstance(b, np.ndarray) for b in bounds) and len(set(bounds)) == 1:
            error = float(bounds[0])  # one bound for every candidate
        else:
            error = np.concatenate([b if isinstance(b, np.ndarray) else np.full(len(f[0]), b)
                                    for b, f in zip(bounds, found)]).astype(np.float64, copy=False)
        kth = kth_largest(scores, top_k) if len(keys) > top_k else -np.inf
        first = scores >= kth - error  # (at least top_k: all those tied with the k-th)
        scored = self._rescored(conn, keys[first], q)
        scored.sort()  # by score, then id (ids are unique, so rows are never compared)
        # (a first row missing cannot happen in one snapshot; if it did, the k-th best worst case is a bar too)
        bar = (-scored[top_k - 1][0] if len(scored) >= top_k else
               kth_largest(scores - error, top_k) if len(keys) > top_k else kth)
        if bar < kth:  # (each candidate left out scores under kth - its bound: none can reach a bar >= kth)
            rest = scores + error >= bar
            rest[first] = False
            if rest.any():
                scored += self._rescored(conn, keys[rest], q)
                scored.sort()
        return [(record_of(row, self.dim, False), -neg) for neg, _, row in scored[:top_k]]

    def _rescored(self, conn: sqlite3.Connection, keys: np.ndarray, q: np.ndarray
                  ) -> list[tuple[float, str, tuple[Any, ...]]]:
        """(minus the exact score, id, row) of the items with ``keys``, read from SQLite."""
        scored: list[tuple[float, str, tuple[Any, ...]]] = []
        # keys are unique store-wide (and a search's candidates are distinct); naming only them makes SQLite look
        # each up by rowid
        for chunk in chunks(keys.tolist()):
            self.db.ahead(conn, chunk)
            rows = conn.execute(rows_by_keys(len(chunk)), chunk).fetchall()
            if rows:
                exact = dot(vectors_of([r[9] for r in rows], self.dim), q)
                scored += [(-float(x), r[1], r) for x, r in zip(exact, rows)]
        return scored

    # -- derived indexes ------------------------------------------------------------------------------------------------

    def _sync(self, *, min_changes: int | None = None, modalities: Sequence[str] | None = None) -> list[str]:
        """Bring the HNSW views of large modalities up to date; save those lagging their files by ``min_changes``
        (default: a bar that grows with the file, see :meth:`Derived.lagging`)."""
        saved = []
        for m in modalities or MODALITIES:
            derived = self._derived[m]
            with self.db.read() as conn:
                self._alive(conn)
                n = self._counts(conn).get(m, 0)
                if not derived.want_ann(n):
                    continue
                with derived.lock:
                    derived.current(conn, n, read_snapshot(conn))
            if derived.persist(self.db.write, min_changes):
                saved.append(m)
        return saved

    def derived(self, modality: str) -> Derived:
        """The derived view of one modality (for ``store check``)."""
        return self._derived[modality]

    def near_pairs(self, threshold: float, neighbours: int, modalities: Sequence[str] | None = None,
                   progress: Any = None) -> Iterator[tuple[str, str, float]]:
        """Pairs at least ``threshold`` similar, from the views in batches (see :mod:`.neighbours`)."""
        from .neighbours import near_pairs

        return near_pairs(self, threshold, neighbours, modalities, progress)

    def keysets(self) -> KeySets:
        """The metadata key-set index (for ``store check``)."""
        return self._keysets

    def _sync_keysets(self) -> None:
        with self._keysets.lock, self.db.read() as conn:
            self._alive(conn)
            self._keysets.current(conn)
        self._keysets.persist(self.db.read, self.db.write)

    def maintain(self) -> None:
        """Bring the HNSW views of large modalities and the key-set index up to date and save what lags its file."""
        self._sync(min_changes=1)
        self._sync_keysets()
        self._dirty.clear()

    def flush(self) -> None:
        """Save HNSW views this process changed, unless the lag is small enough for readers to catch up at once
        (what closing the store does)."""
        if self._dirty:
            self._sync(min_changes=CLOSE_LAG, modalities=sorted(self._dirty))
            self._sync_keysets()
            self._dirty.clear()
