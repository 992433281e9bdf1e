"""Qdrant (``qdrant://host:port``, or local mode ``qdrant+local://PATH``): collections in a Qdrant server.

::

    store = crossmodal.open_store("qdrant://localhost:6333")
    store = crossmodal.open_store("qdrant://qdrant.internal:6333?api_key=...&https=1&index=album,year")
    store = crossmodal.open_store("qdrant+local:///data/qdrant")       # qdrant-client's local mode (one process)
    store = crossmodal.open_store("qdrant+local://:memory:")

Layout: one Qdrant collection per crossmodal collection, named
``<prefix>.<name>`` (prefix ``crossmodal`` unless ``?prefix=...``), with
cosine distance for normalized spaces (dot product otherwise) and
``float16`` vectors with ``precision=f16``. A registry collection named
``<prefix>`` holds one point per collection: its
:class:`~crossmodal.stores.base.CollectionInfo` (space fingerprint, root,
model source), so opening a collection with a model of another space raises
the same :class:`~crossmodal.errors.SpaceMismatch` as every other store.

Points: the id is the UUIDv5 of the item id (stable: the same item always
lands on the same point, so writes are idempotent); the payload holds ``id``,
``modality``, ``reference``, ``text``, ``content_hash``, ``source``,
``stamp``, ``metadata`` (as given) and ``f``, the filter view of the metadata
(see :mod:`~crossmodal.stores.qdrant_filters`). Payload indexes: ``modality``,
and the ``f`` fields of the metadata keys declared with ``?index=a,b`` (or
``index=["a", "b"]``).

Writes are batch upserts with ``wait=True`` (one request per 256 points: an
interrupted upsert can leave part of a large call written, which a retry
completes, since ids are stable). Searches ask HNSW for a few more
candidates than needed (``hnsw_ef``, default 128) and rescore them from their
stored vectors, so scores and tie order match the other stores.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from ..errors import CollectionExists, CollectionNotFound, ConfigError, StoreError, StoreUnavailable
from .base import CheckReport, CollectionInfo, Record, Selection
from .memory import select
from .qdrant_filters import NONE, as_filter, filter_view, has_big_numbers, translate, view_field

__all__ = ["QdrantCollection", "QdrantStore", "point_id"]

#: the UUIDv5 namespace of point ids (fixed forever: changing it would orphan every stored point)
NAMESPACE = uuid.UUID("5d3c2d6e-8f1a-5b7e-9c4d-2a6b1e0f7c39")
_WRITE = 256
_PAGE = 1000
_OPTIONS = ("prefix", "api_key", "https", "grpc", "timeout", "hnsw_ef", "precision", "index")


def point_id(item_id: str) -> str:
    """The Qdrant point id of an item: UUIDv5 of its id."""
    return str(uuid.uuid5(NAMESPACE, item_id))


def _registry_id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "collection\n" + name))


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def _mapped(where: str, collection: str | None = None) -> Iterator[None]:
    """qdrant-client errors -> crossmodal's, at the boundary."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except UnexpectedResponse as exc:
        if exc.status_code == 404 and collection is not None:
            raise CollectionNotFound(f"collection {collection!r} was deleted from {where}") from exc
        raise StoreError(f"Qdrant at {where} answered {exc.status_code}: {exc.content[:300]!r}") from exc
    except (ResponseHandlingException, ConnectionError, TimeoutError) as exc:
        raise StoreUnavailable(f"cannot reach Qdrant at {where}: {exc}") from exc
    except ValueError as exc:  # local mode reports a missing collection as ValueError
        if collection is not None and "not found" in str(exc):
            raise CollectionNotFound(f"collection {collection!r} was deleted from {where}") from exc
        raise StoreError(f"Qdrant at {where}: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("grpc"):
            raise StoreUnavailable(f"Qdrant at {where} (gRPC): {exc}") from exc
        raise


def _record(payload: dict[str, Any], vector: Any, with_vector: bool) -> Record:
    vec = None
    if with_vector:
        raw = vector.get("") if isinstance(vector, dict) else vector
        vec = np.asarray(raw, dtype=np.float32)
    return Record(id=payload["id"], modality=payload["modality"], reference=payload["reference"], vector=vec,
                  text=payload.get("text"), content_hash=payload.get("content_hash", ""),
                  source=payload.get("source", ""), stamp=payload.get("stamp", ""),
                  metadata=payload.get("metadata") or {})


class QdrantCollection:
    """One crossmodal collection: one Qdrant collection (see the module docstring)."""

    def __init__(self, store: QdrantStore, info: CollectionInfo, entry: dict[str, Any]) -> None:
        self.store = store
        self.info = info
        self.qname: str = entry["qdrant"]
        self.big_numbers = bool(entry.get("big_numbers"))
        self.indexed: list[str] = list(entry.get("indexed", []))

    def __repr__(self) -> str:
        return f"<QdrantCollection {self.info.name!r} {self.store.uri}>"

    @property
    def client(self) -> Any:
        return self.store.client

    def _guard(self) -> Any:
        return _mapped(self.store.uri, self.info.name)

    # -- writing ------------------------------------------------------------------------------------------------------

    def upsert(self, records: Sequence[Record]) -> None:
        latest = list({r.id: r for r in records}.values())  # the last record of an id wins
        if not latest:
            return
        self._note_big_numbers(latest)
        with self._guard():
            for start in range(0, len(latest), _WRITE):
                self.client.upsert(self.qname, points=self._batch(latest[start:start + _WRITE]), wait=True)

    def upsert_and_delete(self, records: Sequence[Record], ids: Sequence[str]) -> int:
        """The deletes go with the last batch of points in one batch-update request (Qdrant applies it in order)."""
        from qdrant_client.http import models as qm

        latest = list({r.id: r for r in records}.values())
        written = {r.id for r in latest}
        present = [point_id(r.id) for r in self.get([i for i in dict.fromkeys(ids) if i not in written])]
        split = max(0, len(latest) - _WRITE)
        self.upsert(latest[:split])
        self._note_big_numbers(latest[split:])
        ops = [qm.UpsertOperation(upsert=qm.PointsBatch(batch=self._batch(latest[split:])))] if latest[split:] else []
        ops += [qm.DeleteOperation(delete=qm.PointIdsList(points=present))] if present else []
        if ops:
            with self._guard():
                self.client.batch_update_points(self.qname, update_operations=ops, wait=True)
        return len(present)

    def _note_big_numbers(self, records: Sequence[Record]) -> None:
        if not self.big_numbers and any(has_big_numbers(r.metadata) for r in records):
            # recorded before the points, so no search ever trusts a float comparison for these numbers
            self.store._update_entry(self.info.name, big_numbers=True)
            self.big_numbers = True

    @staticmethod
    def _batch(chunk: Sequence[Record]) -> Any:
        from qdrant_client.http import models as qm

        matrix = np.stack([np.asarray(r.vector, dtype=np.float32).reshape(-1) for r in chunk])
        payloads = [{"id": r.id, "modality": r.modality, "reference": r.reference, "text": r.text,
                     "content_hash": r.content_hash, "source": r.source, "stamp": r.stamp,
                     "metadata": dict(r.metadata), "f": filter_view(r.metadata)} for r in chunk]
        return qm.Batch(ids=[point_id(r.id) for r in chunk], vectors=matrix.tolist(), payloads=payloads)

    def delete(self, ids: Sequence[str] | None = None, selection: Selection | None = None) -> int:
        from qdrant_client.http import models as qm

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
        from qdrant_client.http import models as qm

        if top_k <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        bounds = translate(selection, numbers_exact=not self.big_numbers)
        if bounds.superset is NONE:
            return []
        want = top_k + 8  # a few more, so ties at the k-th score are settled by id like everywhere else
        page = want if bounds.exact else max(4 * want, 64)
        # local mode searches exactly and warns about search parameters
        params = None if self.store.local else qm.SearchParams(hnsw_ef=max(self.store.hnsw_ef, page))
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

    # -- payload indexes ------------------------------------------------------------------------------------------------

    def index_metadata(self, keys: Sequence[str]) -> None:
        """Declare metadata keys that filters use often: Qdrant indexes their filter-view fields."""
        new = [k for k in keys if k not in self.indexed]
        if not new:
            return
        self.store._create_indexes(self.qname, new)
        self.indexed = sorted({*self.indexed, *new})
        self.store._update_entry(self.info.name, indexed=self.indexed)


class QdrantStore:
    """Collections in one Qdrant (server or local mode); see the module docstring."""

    def __init__(
        self,
        uri: str,
        *,
        prefix: str | None = None,
        api_key: str | None = None,
        https: bool | None = None,
        grpc: bool | None = None,
        timeout: float | None = None,
        hnsw_ef: int | None = None,
        precision: str | None = None,
        index: Sequence[str] | str | None = None,
    ) -> None:
        parts = urlsplit(uri)
        opts = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        unknown = sorted(set(opts) - set(_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown Qdrant store option(s) {', '.join(unknown)} in {uri.split('?')[0]}; "
                              f"known: {', '.join(_OPTIONS)}")
        self.prefix: str = prefix or opts.get("prefix", "crossmodal")
        self.precision: str = precision or opts.get("precision", "f32")
        self.hnsw_ef = int(hnsw_ef or opts.get("hnsw_ef") or 128)
        declared = index if index is not None else opts.get("index", "")
        self.declared = [k for k in (declared.split(",") if isinstance(declared, str) else declared) if k]
        if self.precision not in ("f32", "f16"):
            raise ConfigError(f"precision must be f32 or f16, got {self.precision!r}")
        if not self.prefix or any(c in self.prefix for c in '<>:"/\\|?*.'):
            raise ConfigError(f"Qdrant prefix {self.prefix!r} must be a plain name (no '.', '/', ':' ...)")
        scheme = parts.scheme.lower()
        self.local = scheme == "qdrant+local"
        key = api_key or opts.get("api_key")
        self.uri = uri.split("?")[0] + (f"?prefix={self.prefix}" if self.prefix != "crossmodal" else "")
        self._lock = threading.Lock()
        try:
            from qdrant_client import QdrantClient
            from qdrant_client.http import models as qm
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise StoreUnavailable("the Qdrant store needs the 'qdrant' extra, which is not installed: "
                                   "pip install 'crossmodal[qdrant]'") from exc
        with _mapped(self.uri):
            if self.local:
                location = uri[len("qdrant+local://"):].split("?")[0]
                if not location:
                    raise ConfigError("qdrant+local:// needs a folder (qdrant+local:///path/to/dir) or :memory:")
                try:
                    self.client = (QdrantClient(location=":memory:") if location == ":memory:"
                                   else QdrantClient(path=location))
                except RuntimeError as exc:  # the folder is locked by another client (local mode is one process)
                    raise StoreUnavailable(f"cannot open {self.uri}: {exc}") from exc
            else:
                if not parts.hostname:
                    raise ConfigError(f"a Qdrant URI names a host: qdrant://HOST:PORT, got {uri!r}")
                use_https = https if https is not None else _flag(opts.get("https", "0"))
                url = f"{'https' if use_https else 'http'}://{parts.hostname}:{parts.port or 6333}"
                self.client = QdrantClient(url=url, api_key=key, prefer_grpc=grpc if grpc is not None else
                                           _flag(opts.get("grpc", "0")), timeout=int(timeout or opts.get("timeout") or 30))
            if not self.client.collection_exists(self.prefix):
                try:
                    # a one-value vector: every Qdrant version takes it (vectorless collections are newer)
                    self.client.create_collection(self.prefix, vectors_config=qm.VectorParams(
                        size=1, distance=qm.Distance.DOT))
                except Exception:
                    if not self.client.collection_exists(self.prefix):  # not a creation race: a real failure
                        raise

    def __repr__(self) -> str:
        return f"<QdrantStore {self.uri}>"

    # -- the registry -------------------------------------------------------------------------------------------------

    def _qname(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def _entry(self, name: str) -> dict[str, Any] | None:
        with _mapped(self.uri):
            points = self.client.retrieve(self.prefix, ids=[_registry_id(name)], with_payload=True)
        return dict(points[0].payload or {}) if points else None

    def _put_entry(self, name: str, entry: dict[str, Any]) -> None:
        from qdrant_client.http import models as qm

        with _mapped(self.uri):
            self.client.upsert(self.prefix, points=[qm.PointStruct(id=_registry_id(name), vector=[1.0],
                                                                   payload=entry)], wait=True)

    def _update_entry(self, name: str, **changes: Any) -> None:
        with self._lock:
            entry = self._entry(name)
            if entry is None:
                raise CollectionNotFound(f"collection {name!r} was deleted from {self.uri}")
            entry.update(changes)
            self._put_entry(name, entry)

    def _create_indexes(self, qname: str, keys: Sequence[str], *, modality: bool = False) -> None:
        """Payload indexes on ``modality`` and on the filter-view fields of ``keys`` (idempotent)."""
        from qdrant_client.http import models as qm

        fields = [("modality", qm.PayloadSchemaType.KEYWORD)] if modality else []
        for key in keys:
            fields += [(view_field(key, "s"), qm.PayloadSchemaType.KEYWORD), (view_field(key, "n"),
                       qm.PayloadSchemaType.FLOAT), (view_field(key, "b"), qm.PayloadSchemaType.BOOL),
                       (view_field(key, "e"), qm.PayloadSchemaType.BOOL)]
        with _mapped(self.uri), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")  # local mode: harmless
            for field, schema in fields:
                self.client.create_payload_index(qname, field_name=field, field_schema=schema, wait=True)

    # -- collections --------------------------------------------------------------------------------------------------

    def create_collection(self, info: CollectionInfo) -> QdrantCollection:
        from qdrant_client.http import models as qm

        if self._entry(info.name) is not None:
            raise CollectionExists(f"collection {info.name!r} already exists in {self.uri}")
        qname = self._qname(info.name)
        distance = qm.Distance.COSINE if info.space.normalized else qm.Distance.DOT
        datatype = qm.Datatype.FLOAT16 if self.precision == "f16" else None
        with _mapped(self.uri):
            if self.client.collection_exists(qname):
                # left by a create or drop that died half way (data is only written once registered)
                self.client.delete_collection(qname)
            try:
                self.client.create_collection(qname, vectors_config=qm.VectorParams(
                    size=info.space.dim, distance=distance, datatype=datatype))
            except Exception as exc:
                if self._entry(info.name) is not None:
                    raise CollectionExists(f"collection {info.name!r} already exists in {self.uri}") from None
                raise StoreError(f"cannot create Qdrant collection {qname!r} at {self.uri}: {exc}") from exc
        self._create_indexes(qname, self.declared, modality=True)
        entry = {"name": info.name, "info": info.to_dict(), "qdrant": qname, "big_numbers": False,
                 "indexed": sorted(set(self.declared))}
        self._put_entry(info.name, entry)
        return QdrantCollection(self, info, entry)

    def open_collection(self, name: str) -> QdrantCollection:
        entry = self._entry(name)
        if entry is None:
            raise CollectionNotFound(f"no collection {name!r} in {self.uri}")
        col = QdrantCollection(self, CollectionInfo.from_dict(entry["info"]), entry)
        if self.declared:
            col.index_metadata(self.declared)
        return col

    def _entries(self) -> list[dict[str, Any]]:
        entries, offset = [], None
        while True:
            with _mapped(self.uri):
                points, offset = self.client.scroll(self.prefix, limit=_PAGE, offset=offset, with_payload=True)
            entries += [dict(p.payload or {}) for p in points]
            if offset is None:
                return sorted(entries, key=lambda e: e["name"])

    def list_collections(self) -> list[CollectionInfo]:
        return [CollectionInfo.from_dict(e["info"]) for e in self._entries()]

    def update_collection(self, info: CollectionInfo) -> None:
        entry = self._entry(info.name)
        if entry is None:
            raise CollectionNotFound(f"no collection {info.name!r} in {self.uri}")
        if CollectionInfo.from_dict(entry["info"]).space != info.space:
            raise StoreError("a collection's space cannot change; create a new collection for another model")
        self._update_entry(info.name, info=info.to_dict())

    def drop_collection(self, name: str) -> None:
        from qdrant_client.http import models as qm

        entry = self._entry(name)
        if entry is None:
            raise CollectionNotFound(f"no collection {name!r} in {self.uri}")
        with _mapped(self.uri):
            # unregister first: a crash between the two leaves an unregistered collection, which check removes
            self.client.delete(self.prefix, points_selector=qm.PointIdsList(points=[_registry_id(name)]), wait=True)
            if self.client.collection_exists(entry["qdrant"]):
                self.client.delete_collection(entry["qdrant"])

    def check(self, *, repair: bool = True) -> CheckReport:
        """Registry against Qdrant: every collection present with the right vectors, no leftovers, indexes built."""
        report = CheckReport()
        entries = self._entries()
        with _mapped(self.uri):
            existing = {c.name for c in self.client.get_collections().collections}
            for entry in entries:
                name, qname = entry["name"], entry["qdrant"]
                if qname not in existing:
                    report.problems.append(f"collection {name!r}: its Qdrant collection {qname!r} is missing")
                    report.unresolved.append(report.problems[-1])
                    continue
                dim = CollectionInfo.from_dict(entry["info"]).space.dim
                params = self.client.get_collection(qname).config.params.vectors
                size = getattr(params, "size", None)
                if size != dim:
                    report.problems.append(f"collection {name!r}: Qdrant holds vectors of size {size}, expected {dim}")
                    report.unresolved.append(report.problems[-1])
                    continue
                report.collections[name] = int(self.client.count(qname, exact=True).count)
                if not self.local:
                    schema = self.client.get_collection(qname).payload_schema or {}
                    wanted = ["modality"] + [view_field(k, "s") for k in entry.get("indexed", [])]
                    missing = [f for f in wanted if f not in schema]
                    if missing:
                        report.notes.append(f"collection {name!r}: building payload indexes {', '.join(missing)}")
                        if repair:
                            self._create_indexes(qname, entry.get("indexed", []), modality=True)
            known = {e["qdrant"] for e in entries}
            for qname in sorted(existing):
                if qname.startswith(self.prefix + ".") and qname not in known:
                    msg = f"Qdrant collection {qname!r} is not registered (left by an interrupted create or drop)"
                    report.problems.append(msg)
                    if repair:
                        self.client.delete_collection(qname)
                        report.repairs.append(f"removed {qname!r}")
                    else:
                        report.unresolved.append(msg)
        return report

    def close(self) -> None:
        self.client.close()
