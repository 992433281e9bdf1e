"""The Qdrant store's registry and names: which Qdrant collection holds which crossmodal collection.

A registry collection named ``<prefix>`` holds one point per crossmodal
collection (its id: :func:`registry_id` of the name), whose payload is the
collection's *entry*: its :class:`~crossmodal.stores.base.CollectionInfo`,
its Qdrant collection's name, the metadata keys with payload indexes, and
whether any metadata number is too large for a float. Items are points whose
id is :func:`point_id` of the item id. Qdrant's errors become crossmodal's in
:func:`mapped`.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from qdrant_client.http import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ...errors import CollectionNotFound, CrossmodalError, StoreError, StoreUnavailable
from .filters import view_field

__all__ = ["NAMESPACE", "Registry", "mapped", "point_id", "registry_id"]

#: the UUIDv5 namespace of point ids (fixed forever: changing it would orphan every stored point)
NAMESPACE = uuid.UUID("5d3c2d6e-8f1a-5b7e-9c4d-2a6b1e0f7c39")
_PAGE = 1000


def point_id(item_id: str) -> str:
    """The Qdrant point id of an item: UUIDv5 of its id."""
    return str(uuid.uuid5(NAMESPACE, item_id))


def registry_id(name: str) -> str:
    """The id of a collection's entry in the registry."""
    return str(uuid.uuid5(NAMESPACE, "collection\n" + name))


@contextmanager
def mapped(where: str, collection: str | None = None) -> Iterator[None]:
    """qdrant-client errors -> crossmodal's, at the boundary (``collection``: the one being used, if any)."""
    try:
        yield
    except CrossmodalError:  # ours already (a ConfigError is a ValueError too, which the local mode's branch takes)
        raise
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


class Registry:
    """The entries of one store (``prefix``) in one Qdrant ``client``; ``uri`` names the store in messages."""

    def __init__(self, client: Any, prefix: str, uri: str) -> None:
        self.client = client
        self.prefix = prefix
        self.uri = uri
        self._lock = threading.Lock()

    def qname(self, name: str) -> str:
        """The Qdrant collection that holds crossmodal collection ``name``."""
        return f"{self.prefix}.{name}"

    def ensure(self) -> None:
        """Create the registry collection if it is missing."""
        with mapped(self.uri):
            if self.client.collection_exists(self.prefix):
                return
            try:
                # a one-value vector: every Qdrant version takes it (vectorless collections are newer)
                self.client.create_collection(self.prefix, vectors_config=qm.VectorParams(size=1,
                                                                                          distance=qm.Distance.DOT))
            except Exception:
                if not self.client.collection_exists(self.prefix):  # not a creation race: a real failure
                    raise

    def entry(self, name: str) -> dict[str, Any] | None:
        with mapped(self.uri):
            points = self.client.retrieve(self.prefix, ids=[registry_id(name)], with_payload=True)
        return dict(points[0].payload or {}) if points else None

    def put(self, name: str, entry: dict[str, Any]) -> None:
        with mapped(self.uri):
            self.client.upsert(self.prefix, points=[qm.PointStruct(id=registry_id(name), vector=[1.0],
                                                                   payload=entry)], wait=True)

    def update(self, name: str, **changes: Any) -> None:
        with self._lock:
            entry = self.entry(name)
            if entry is None:
                raise CollectionNotFound(f"collection {name!r} was deleted from {self.uri}")
            entry.update(changes)
            self.put(name, entry)

    def remove(self, name: str) -> None:
        with mapped(self.uri):
            self.client.delete(self.prefix, points_selector=qm.PointIdsList(points=[registry_id(name)]), wait=True)

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, sorted by collection name."""
        entries, offset = [], None
        while True:
            with mapped(self.uri):
                points, offset = self.client.scroll(self.prefix, limit=_PAGE, offset=offset, with_payload=True)
            entries += [dict(p.payload or {}) for p in points]
            if offset is None:
                return sorted(entries, key=lambda e: e["name"])

    def create_indexes(self, qname: str, keys: Sequence[str], *, modality: bool = False) -> None:
        """Payload indexes on ``modality`` and on the filter-view fields of ``keys`` (idempotent)."""
        fields = [("modality", qm.PayloadSchemaType.KEYWORD)] if modality else []
        for key in keys:
            fields += [(view_field(key, "s"), qm.PayloadSchemaType.KEYWORD), (view_field(key, "n"),
                       qm.PayloadSchemaType.FLOAT), (view_field(key, "b"), qm.PayloadSchemaType.BOOL),
                       (view_field(key, "e"), qm.PayloadSchemaType.BOOL)]
        with mapped(self.uri), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")  # local mode: harmless
            for field, schema in fields:
                self.client.create_payload_index(qname, field_name=field, field_schema=schema, wait=True)
