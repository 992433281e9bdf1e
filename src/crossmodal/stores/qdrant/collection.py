"""One crossmodal collection in Qdrant: its points, writes, reads and search.

Points: the id is the UUIDv5 of the item id (:func:`~crossmodal.stores.qdrant.registry.point_id`:
stable, so the same item always lands on the same point and writes are
idempotent); the payload holds ``id``, ``modality``, ``reference``, ``text``,
``content_hash``, ``source``, ``stamp``, ``metadata`` (as given) and ``f``,
the filter view of the metadata (see :mod:`~crossmodal.stores.qdrant.filters`).

Writes are batch upserts with ``wait=True`` (one request per 256 points: an
interrupted upsert can leave part of a large call written, which a retry
completes, since ids are stable). Searches ask HNSW for a few more
candidates than needed (``hnsw_ef``, default 128) and rescore them from their
stored vectors, so scores and tie order match the other stores. A filter
Qdrant cannot decide exactly is checked on each point with
:func:`~crossmodal.stores.filters.select` on the way out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client.http import models as qm

from ...errors import ConfigError
from ..base import BackendBase, CollectionInfo, Record
from ..filters import Selection, select
from ..keywords import record_terms
from .filters import NONE, as_filter, filter_view, has_big_numbers, translate
from .keywords import MULTI_NAME, SPARSE_NAME, TOKENS_NAME, document_vector, query_vector
from .registry import Registry, mapped, point_id

__all__ = ["QdrantCollection"]

_WRITE = 256
_PAGE = 1000


def _record(payload: dict[str, Any], vector: Any, with_vector: bool) -> Record:
    vec = None
    tokens: dict[str, Any] = {}
    if with_vector:
        raw = vector.get("") if isinstance(vector, dict) else vector
        vec = np.asarray(raw, dtype=np.float32)
        if isinstance(vector, dict):
            sparse, multi = vector.get(TOKENS_NAME), vector.get(MULTI_NAME)
            tokens = {"sparse": None if sparse is None else dict(zip(sparse.indices, sparse.values)),
                      "multivector": None if multi is None else np.asarray(multi, dtype=np.float16)}
    return Record(id=payload["id"], modality=payload["modality"], reference=payload["reference"], vector=vec,
                  text=payload.get("text"), content_hash=payload.get("content_hash", ""),
                  source=payload.get("source", ""), stamp=payload.get("stamp", ""),
                  metadata=payload.get("metadata") or {}, **tokens)



class QdrantCollection(BackendBase):
    """One crossmodal collection: one Qdrant collection (see the module docstring). ``hnsw_ef``: the search beam
    (None: no search parameters, for local mode, which searches exactly)."""

    def __init__(self, registry: Registry, info: CollectionInfo, entry: dict[str, Any], *,
                 hnsw_ef: int | None) -> None:
        self.registry = registry
        self.hnsw_ef = hnsw_ef
        self.info = info
        self.qname: str = entry["qdrant"]
        self.big_numbers = bool(entry.get("big_numbers"))
        self.indexed: list[str] = list(entry.get("indexed", []))
        #: collections created before keyword search have no sparse vector: their keyword search reads every item
        self.sparse = bool(entry.get("keyword"))
        #: collections created before sparse vectors and multi-vectors were kept have neither named vector
        self.holds_token_vectors = bool(entry.get("tokens"))

    def __repr__(self) -> str:
        return f"<QdrantCollection {self.info.name!r} {self.registry.uri}>"

    @property
    def client(self) -> Any:
        return self.registry.client

    def _guard(self) -> Any:
        return mapped(self.registry.uri, self.info.name)

    # -- writing ------------------------------------------------------------------------------------------------------

    def upsert(self, records: Sequence[Record]) -> None:
        latest = list({r.id: r for r in records}.values())  # the last record of an id wins
        if not latest:
            return
        self._note_big_numbers(latest)
        with self._guard():
            for start in range(0, len(latest), _WRITE):
                self.client.upsert(self.qname, points=self._batch(latest[start:start + _WRITE]), wait=True)  # type: ignore[arg-type]

    def replace(self, records: Sequence[Record], ids: Sequence[str]) -> int:
        """The deletes go with the last batch of points in one batch-update request (Qdrant applies it in order)."""
        latest = list({r.id: r for r in records}.values())
        written = {r.id for r in latest}
        present: list[Any] = [point_id(r.id) for r in self.get([i for i in dict.fromkeys(ids) if i not in written])]
        split = max(0, len(latest) - _WRITE)
        self.upsert(latest[:split])
        self._note_big_numbers(latest[split:])
        last = latest[split:]
        batch = self._batch(last) if last else None
        ops: list[Any] = [] if batch is None else [qm.UpsertOperation(
            upsert=qm.PointsList(points=batch) if isinstance(batch, list) else qm.PointsBatch(batch=batch))]
        ops += [qm.DeleteOperation(delete=qm.PointIdsList(points=present))] if present else []
        if ops:
            with self._guard():
                self.client.batch_update_points(self.qname, update_operations=ops, wait=True)
        return len(present)

    def _note_big_numbers(self, records: Sequence[Record]) -> None:
        if not self.big_numbers and any(has_big_numbers(r.metadata) for r in records):
            # recorded before the points, so no search ever trusts a float comparison for these numbers
            self.registry.update(self.info.name, big_numbers=True)
            self.big_numbers = True

    def _batch(self, chunk: Sequence[Record]) -> Any:
        matrix = np.stack([np.asarray(r.vector, dtype=np.float32).reshape(-1) for r in chunk])
        terms = [record_terms(r, self.info.text_keys) for r in chunk]
        payloads = [{"id": r.id, "modality": r.modality, "reference": r.reference, "text": r.text,
                     "content_hash": r.content_hash, "source": r.source, "stamp": r.stamp,
                     "metadata": dict(r.metadata), "f": filter_view(r.metadata), "terms": " ".join(t)}
                    for r, t in zip(chunk, terms)]
        ids = [point_id(r.id) for r in chunk]
        if not self.sparse:
            return qm.Batch(ids=ids, vectors=matrix.tolist(), payloads=payloads)
        if not self.holds_token_vectors or all(not r.sparse and r.multivector is None for r in chunk):
            return qm.Batch(ids=ids, payloads=payloads,
                            vectors={"": matrix.tolist(), SPARSE_NAME: [document_vector(t) for t in terms]})
        # token vectors: points one by one, since an item without them must leave them out (Qdrant refuses empty
        # multi-vectors, and a batch gives every point every vector)
        points = []
        for pid, r, row, t, payload in zip(ids, chunk, matrix.tolist(), terms, payloads):
            vector: dict[str, Any] = {"": row, SPARSE_NAME: document_vector(t)}
            if r.sparse:
                indices = sorted(r.sparse)
                vector[TOKENS_NAME] = qm.SparseVector(indices=indices, values=[float(r.sparse[i]) for i in indices])
            if r.multivector is not None and len(r.multivector):
                if self.info.multivector_dim is None:
                    raise ConfigError(f"collection {self.info.name!r} in Qdrant was created without a multi-vector "
                                      f"(item {r.id!r} has one): copy it into a new collection made with its model")
                vector[MULTI_NAME] = np.asarray(r.multivector, dtype=np.float32).tolist()
            points.append(qm.PointStruct(id=pid, vector=vector, payload=payload))
        return points

    def delete(self, ids: Sequence[str] | None = None, selection: Selection | None = None) -> int:
        if ids is not None:
            present = [r.id for r in self.get(list(dict.fromkeys(ids)))]
            gone: list[Any] = [point_id(i) for i in present]
        else:
            bounds = translate(selection, numbers_exact=not self.big_numbers)
            if bounds.superset is NONE:
                return 0
            if bounds.exact:
                with self._guard():
                    n = self.client.count(self.qname, count_filter=as_filter(bounds.superset), exact=True).count
                    if n:
                        self.client.delete(self.qname, points_selector=qm.FilterSelector(
                            filter=as_filter(bounds.superset) or qm.Filter()), wait=True)
                return int(n)
            gone = [point_id(r.id) for r in self.scan(selection)]
        with self._guard():
            for start in range(0, len(gone), _PAGE):
                self.client.delete(self.qname, points_selector=qm.PointIdsList(points=gone[start:start + _PAGE]),
                                   wait=True)
        return len(gone)

    # -- reading ------------------------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[Record]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Record] = {}
        with self._guard():
            for start in range(0, len(wanted), _PAGE):
                points = self.client.retrieve(self.qname, ids=[point_id(i) for i in wanted[start:start + _PAGE]],
                                              with_payload=True, with_vectors=vectors)
                for p in points:
                    found[p.payload["id"]] = _record(p.payload, p.vector, vectors)
        return [found[i] for i in ids if i in found]

    def count(self, selection: Selection | None = None) -> int:
        bounds = translate(selection, numbers_exact=not self.big_numbers)
        if bounds.superset is NONE:
            return 0
        if not bounds.exact:
            return sum(1 for _ in self._ids(selection, bounds))
        with self._guard():
            return int(self.client.count(self.qname, count_filter=as_filter(bounds.superset), exact=True).count)

    def _ids(self, selection: Selection | None, bounds: Any) -> Iterator[tuple[str, str]]:
        """(item id, point id) of every selected point, in Qdrant's order."""
        offset = None
        payload: Any = True if not bounds.exact else ["id"]
        while True:
            with self._guard():
                points, offset = self.client.scroll(self.qname, scroll_filter=as_filter(bounds.superset), limit=_PAGE,
                                                    offset=offset, with_payload=payload, with_vectors=False)
            for p in points:
                if bounds.exact or select(_record(p.payload, None, False), selection):
                    yield p.payload["id"], p.id
            if offset is None:
                return

    def scan(self, selection: Selection | None = None, *, vectors: bool = False) -> Iterator[Record]:
        """Selected items by id (code-point order, like every store): ids first, then the items page by page."""
        bounds = translate(selection, numbers_exact=not self.big_numbers)
        if bounds.superset is NONE:
            return
        pairs = sorted(self._ids(selection, bounds))
        for start in range(0, len(pairs), _PAGE):
            chunk = pairs[start:start + _PAGE]
            with self._guard():
                points = self.client.retrieve(self.qname, ids=[pid for _, pid in chunk], with_payload=True,
                                              with_vectors=vectors)
            found = {p.payload["id"]: _record(p.payload, p.vector, vectors) for p in points}
            for item_id, _ in chunk:
                if item_id in found:  # deleted since the ids were listed: gone
                    yield found[item_id]

    def query(self, vector: np.ndarray, top_k: int, selection: Selection | None = None) -> list[tuple[Record, float]]:
        if top_k <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        bounds = translate(selection, numbers_exact=not self.big_numbers)
        if bounds.superset is NONE:
            return []
        want = top_k + 8  # a few more, so ties at the k-th score are settled by id like everywhere else
        page = want if bounds.exact else max(4 * want, 64)
        # local mode searches exactly and warns about search parameters
        params = None if self.hnsw_ef is None else qm.SearchParams(hnsw_ef=max(self.hnsw_ef, page))
        found: list[Record] = []
        offset = 0
        while True:
            with self._guard():
                points = self.client.query_points(self.qname, query=q.tolist(), query_filter=as_filter(bounds.superset),
                                                  limit=page, offset=offset or None, with_payload=True,
                                                  with_vectors=True, search_params=params).points
            for p in points:
                rec = _record(p.payload, p.vector, True)
                if bounds.exact or select(rec, selection):
                    found.append(rec)
            # a filter Qdrant cannot decide exactly: keep paging until enough candidates pass it
            if bounds.exact or len(found) >= want or len(points) < page:
                break
            offset += page
        if not found:
            return []
        scores = np.stack([r.vector for r in found]) @ q  # type: ignore[misc]
        order = sorted(range(len(found)), key=lambda i: (-float(scores[i]), found[i].id))[:top_k]
        return [(found[i].without_vector(), float(scores[i])) for i in order]

    def keyword(self, terms: Sequence[str], top_k: int, selection: Selection | None = None
                ) -> list[tuple[Record, float]]:
        """BM25 from the ``keyword`` sparse vectors (see :mod:`~crossmodal.stores.qdrant.keywords`); each candidate
        is checked against its stored terms, so a hash collision never returns an item without a query term."""
        terms = list(dict.fromkeys(terms))
        if not self.sparse:
            return super().keyword(terms, top_k, selection)
        if top_k <= 0 or not terms:
            return []
        wanted = set(terms)
        # a point whose stored terms hold none of the query's was matched by a hash collision only
        return self._sparse_search(query_vector(terms), SPARSE_NAME, top_k, selection,
                                   lambda p: bool(wanted & set((p.payload.get("terms") or "").split())))

    def sparse_query(self, query: Mapping[int, float], top_k: int, selection: Selection | None = None
                     ) -> list[tuple[Record, float]]:
        """The ``sparse`` named vector's dot product (exact: Qdrant searches sparse vectors by inverted index)."""
        if not self.holds_token_vectors:
            return super().sparse_query(query, top_k, selection)
        if top_k <= 0 or not query:
            return []
        indices = sorted(int(i) for i in query)
        vector = qm.SparseVector(indices=indices, values=[float(query[i]) for i in indices])
        return self._sparse_search(vector, TOKENS_NAME, top_k, selection, lambda p: p.score > 0)

    def _sparse_search(self, vector: Any, using: str, top_k: int, selection: Selection | None,
                       keep: Callable[[Any], bool]) -> list[tuple[Record, float]]:
        """The best ``top_k`` points by the named sparse vector ``using`` that ``keep`` accepts and the selection
        passes (checked here where Qdrant's filter is only a superset), in pages; ties by id."""
        bounds = translate(selection, numbers_exact=not self.big_numbers)
        if bounds.superset is NONE:
            return []
        want = top_k + 8  # a few more, so ties at the k-th score are settled by id like everywhere else
        page = want if bounds.exact else max(4 * want, 64)
        found: list[tuple[Record, float]] = []
        offset = 0
        while True:
            with self._guard():
                points = self.client.query_points(self.qname, query=vector, using=using, limit=page,
                                                  query_filter=as_filter(bounds.superset), offset=offset or None,
                                                  with_payload=True).points
            for p in points:
                rec = _record(p.payload, None, False)
                if keep(p) and (bounds.exact or select(rec, selection)):
                    found.append((rec, float(p.score)))
            if len(found) >= want or len(points) < page:
                break
            offset += page
        found.sort(key=lambda rs: (-rs[1], rs[0].id))
        return found[:top_k]

    def multivectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not self.holds_token_vectors or self.info.multivector_dim is None:
            return {}
        out: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(ids))
        with self._guard():
            for start in range(0, len(wanted), _PAGE):
                points = self.client.retrieve(self.qname, ids=[point_id(i) for i in wanted[start:start + _PAGE]],
                                              with_payload=["id"], with_vectors=[MULTI_NAME])
                for p in points:
                    multi = p.vector.get(MULTI_NAME) if isinstance(p.vector, dict) else None
                    if multi is not None:
                        out[p.payload["id"]] = np.asarray(multi, dtype=np.float32)
        return out

    def maxsim(self, query: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        """Qdrant's ``MAX_SIM`` comparator over the candidates (``HasId``): it sums over the query's rows, so the
        score is divided by their number (the mean, as everywhere in crossmodal)."""
        q = np.asarray(query, dtype=np.float32)
        wanted = list(dict.fromkeys(ids))
        if not self.holds_token_vectors or self.info.multivector_dim is None or not wanted or q.size == 0:
            return {}
        with self._guard():
            points = self.client.query_points(
                self.qname, query=q.tolist(), using=MULTI_NAME, limit=len(wanted), with_payload=["id"],
                query_filter=qm.Filter(must=[qm.HasIdCondition(has_id=[point_id(i) for i in wanted])])).points
        return {p.payload["id"]: float(p.score) / q.shape[0] for p in points}

    # -- payload indexes ------------------------------------------------------------------------------------------------

    def declare_indexes(self, keys: Sequence[str]) -> None:
        """Metadata keys that filters use often: Qdrant indexes their filter-view fields (recorded in the entry)."""
        new = [k for k in keys if k not in self.indexed]
        if not new:
            return
        self.registry.create_indexes(self.qname, new)
        self.indexed = sorted({*self.indexed, *new})
        self.registry.update(self.info.name, indexed=self.indexed)
