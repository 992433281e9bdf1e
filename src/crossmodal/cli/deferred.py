"""A store that opens on first use, so a command that fails before it writes leaves no store behind.

``crossmodal index`` on a fresh machine looks up the collection, loads the
model and only then writes. Opening an embedded store creates its directory,
so opening it up front would leave an empty store behind when the model cannot
be loaded. Until something needs the backend, an embedded store whose
directory does not exist yet reads as a store without collections.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..collection import Collection
from ..errors import CollectionNotFound
from ..store import Store, check_collection_name
from ..stores.base import CollectionInfo, VectorStore
from ..stores.uri import embedded_path, open_backend

if TYPE_CHECKING:
    from ..embedder import Model

__all__ = ["DeferredStore"]


class DeferredStore(Store):
    def __init__(self, uri: str) -> None:  # no super().__init__: the backend is opened by the property below
        self._uri = uri
        self._path = embedded_path(uri)
        self._backend: VectorStore | None = None

    @property  # type: ignore[override]
    def backend(self) -> VectorStore:
        if self._backend is None:
            self._backend = open_backend(self._uri)
        return self._backend

    def _not_there(self) -> bool:
        return self._backend is None and self._path is not None and not self._path.exists()

    @property
    def uri(self) -> str:
        return str(self._path) if self._not_there() else self.backend.uri

    def collections(self) -> list[CollectionInfo]:
        return [] if self._not_there() else super().collections()

    def collection(self, name: str = "default", model: Model | None = None, *, create: bool = True,
                   root: str | os.PathLike[str] | None = None, text_keys: Sequence[str] = ()) -> Collection:
        if self._not_there() and (model is None or not create):  # only creating one needs the directory
            check_collection_name(name)
            raise CollectionNotFound(f"no collection {name!r} in {self.uri} (collections: none yet; "
                                     "create one with `crossmodal index`)")
        return super().collection(name, model, create=create, root=root, text_keys=text_keys)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
