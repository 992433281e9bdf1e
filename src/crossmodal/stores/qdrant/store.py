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
the same :class:`~crossmodal.errors.SpaceMismatch` as every other store (see
:mod:`~crossmodal.stores.qdrant.registry`). Payload indexes: ``modality``,
and the filter-view fields of the metadata keys declared with ``?index=a,b``
(or ``index=["a", "b"]``, or ``declare_indexes``). Options:
:class:`~crossmodal.stores.qdrant.options.QdrantOptions`; points, writes and
searches: :mod:`~crossmodal.stores.qdrant.collection`.

A Qdrant server takes writes from many processes and machines at once
(:class:`QdrantStore` is ``shared``); local mode is one process by design
(:class:`QdrantLocalStore` is not).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from ...errors import CollectionExists, CollectionNotFound, ConfigError, StoreError, StoreUnavailable
from ..base import CheckReport, CollectionInfo, StoreBase
from .collection import QdrantCollection
from .filters import view_field
from .keywords import sparse_config, vectors_config
from .options import QdrantOptions
from .registry import Registry, mapped

__all__ = ["QdrantLocalStore", "QdrantStore"]


class QdrantStore(StoreBase):
    """Collections in one Qdrant server (see the module docstring); the options are :class:`QdrantOptions`, from
    the URI's query string or keyword arguments."""

    shared = True
    kind = "a Qdrant server"
    #: the URI scheme this class opens
    scheme = "qdrant"
    #: qdrant-client's local mode (no server: exact search, no payload indexes)
    local = False

    def __init__(self, uri: str, *, options: QdrantOptions | None = None, **keywords: Any) -> None:
        if options is not None and keywords:
            raise ConfigError("give the store options as a QdrantOptions object or as keyword arguments, not both")
        self.options = options if options is not None else QdrantOptions.from_uri(uri, **keywords)
        self.prefix = self.options.prefix
        self.uri = uri.split("?")[0] + (f"?prefix={self.prefix}" if self.prefix != "crossmodal" else "")
        scheme = urlsplit(uri).scheme.lower()
        if scheme != self.scheme:
            raise ConfigError(f"{type(self).__name__} opens {self.scheme}:// URIs, not {uri.split('?')[0]}")
        with mapped(self.uri):
            self.client = self._client(uri)
        self.registry = Registry(self.client, self.prefix, self.uri)
        self.registry.ensure()

    def _client(self, uri: str) -> Any:
        parts = urlsplit(uri)
        if not parts.hostname:
            raise ConfigError(f"a Qdrant URI names a host: qdrant://HOST:PORT, got {uri!r}")
        o = self.options
        url = f"{'https' if o.https else 'http'}://{parts.hostname}:{parts.port or 6333}"
        return QdrantClient(url=url, api_key=o.api_key, prefer_grpc=o.grpc, timeout=o.timeout)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri}>"

    def _collection(self, info: CollectionInfo, entry: dict[str, Any]) -> QdrantCollection:
        return QdrantCollection(self.registry, info, entry, hnsw_ef=None if self.local else self.options.hnsw_ef)

    # -- collections --------------------------------------------------------------------------------------------------

    def create_collection(self, info: CollectionInfo) -> QdrantCollection:
        if self.registry.entry(info.name) is not None:
            raise CollectionExists(f"collection {info.name!r} already exists in {self.uri}")
        qname = self.registry.qname(info.name)
        distance = qm.Distance.COSINE if info.space.normalized else qm.Distance.DOT
        datatype = qm.Datatype.FLOAT16 if self.options.precision == "f16" else None
        with mapped(self.uri):
            if self.client.collection_exists(qname):
                # left by a create or drop that died half way (data is only written once registered)
                self.client.delete_collection(qname)
            try:
                self.client.create_collection(qname, vectors_config=vectors_config(info, distance, datatype),
                                              sparse_vectors_config=sparse_config())
            except Exception as exc:
                if self.registry.entry(info.name) is not None:
                    raise CollectionExists(f"collection {info.name!r} already exists in {self.uri}") from None
                raise StoreError(f"cannot create Qdrant collection {qname!r} at {self.uri}: {exc}") from exc
        self.registry.create_indexes(qname, self.options.index, modality=True)
        entry = {"name": info.name, "info": info.to_dict(), "qdrant": qname, "big_numbers": False,
                 "indexed": sorted(set(self.options.index)), "keyword": True, "tokens": True}
        self.registry.put(info.name, entry)
        return self._collection(info, entry)

    def open_collection(self, name: str) -> QdrantCollection:
        entry = self.registry.entry(name)
        if entry is None:
            raise CollectionNotFound(f"no collection {name!r} in {self.uri}")
        col = self._collection(CollectionInfo.from_dict(entry["info"]), entry)
        if self.options.index:
            col.declare_indexes(self.options.index)
        return col

    def list_collections(self) -> list[CollectionInfo]:
        return [CollectionInfo.from_dict(e["info"]) for e in self.registry.entries()]

    def update_collection(self, info: CollectionInfo) -> None:
        entry = self.registry.entry(info.name)
        if entry is None:
            raise CollectionNotFound(f"no collection {info.name!r} in {self.uri}")
        if CollectionInfo.from_dict(entry["info"]).space != info.space:
            raise StoreError("a collection's space cannot change; create a new collection for another model")
        self.registry.update(info.name, info=info.to_dict())

    def drop_collection(self, name: str) -> None:
        entry = self.registry.entry(name)
        if entry is None:
            raise CollectionNotFound(f"no collection {name!r} in {self.uri}")
        # unregister first: a crash between the two leaves an unregistered collection, which check removes
        self.registry.remove(name)
        with mapped(self.uri):
            if self.client.collection_exists(entry["qdrant"]):
                self.client.delete_collection(entry["qdrant"])

    def check(self, *, repair: bool = True) -> CheckReport:
        """Registry against Qdrant: every collection present with the right vectors, no leftovers, indexes built."""
        report = CheckReport()
        entries = self.registry.entries()
        with mapped(self.uri):
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
                            self.registry.create_indexes(qname, entry.get("indexed", []), modality=True)
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


class QdrantLocalStore(QdrantStore):
    """Collections in qdrant-client's local mode: a folder (``qdrant+local:///path``) or memory
    (``qdrant+local://:memory:``), open in one process at a time."""

    shared = False
    kind = "Qdrant's local mode"
    scheme = "qdrant+local"
    local = True

    def _client(self, uri: str) -> Any:
        location = uri[len("qdrant+local://"):].split("?")[0]
        if not location:
            raise ConfigError("qdrant+local:// needs a folder (qdrant+local:///path/to/dir) or :memory:")
        try:
            return QdrantClient(location=":memory:") if location == ":memory:" else QdrantClient(path=location)
        except RuntimeError as exc:  # the folder is locked by another client (local mode is one process)
            raise StoreUnavailable(f"cannot open {self.uri}: {exc}") from exc
