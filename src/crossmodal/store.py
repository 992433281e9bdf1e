"""open_store and Store: where collections live.

>>> store = crossmodal.open_store()                 # the default embedded store (CROSSMODAL_STORE or the XDG data dir)
>>> store = crossmodal.open_store("~/photos-index") # an embedded store in that directory
>>> store = crossmodal.open_store("memory://")      # in memory, for tests
>>> col = store.collection("photos", model=model)   # create or open (and check the model's space)
>>> [info.name for info in store.collections()]
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from .collection import Collection, model_source
from .errors import CollectionNotFound, ConfigError
from .retrieval.tokens import multivector_dim
from .stores import transfer
from .stores.base import CheckReport, CollectionInfo, VectorStore
from .stores.uri import open_backend

if TYPE_CHECKING:
    from .embedder import Model

__all__ = ["Store", "copy_collections", "open_store"]

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or not set(name) <= _NAME_CHARS or name[0] == ".":
        raise ConfigError(f"collection name {name!r} must be 1-128 characters of letters, digits, '_', '-' and '.', "
                          "not starting with '.'")
    return name


class Store:
    """A set of named collections in one backend. Use as a context manager, or call :meth:`close`."""

    def __init__(self, backend: VectorStore) -> None:
        self.backend = backend

    @property
    def uri(self) -> str:
        return self.backend.uri

    def __repr__(self) -> str:
        return f"<crossmodal.Store {self.uri}>"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def collection(
        self,
        name: str = "default",
        model: Model | None = None,
        *,
        create: bool = True,
        root: str | os.PathLike[str] | None = None,
        text_keys: Sequence[str] = (),
    ) -> Collection:
        """Open the collection ``name``, or create it in ``model``'s space.

        An existing collection refuses a model from another space
        (:class:`SpaceMismatch` naming both). Without a model, an existing
        collection opens for reading, deleting and searching by vector or id;
        a missing one raises :class:`CollectionNotFound` (as it does with
        ``create=False``). ``root`` is the folder relative image references
        resolve against (recorded when the collection is created).
        ``text_keys`` are metadata keys whose values keyword search matches as
        text (``["title", "tags"]``), besides texts, captions and file names;
        they are recorded when the collection is created.
        """
        check_collection_name(name)
        try:
            backend = self.backend.open_collection(name)
        except CollectionNotFound:
            if model is None or not create:
                known = ", ".join(i.name for i in self.backend.list_collections()) or "none"
                raise CollectionNotFound(
                    f"no collection {name!r} in {self.uri} (collections: {known})"
                    + ("; give a model to create it" if model is None and create else "")
                ) from None
            info = CollectionInfo(name=name, space=model.space, model_source=model_source(model),
                                  root=str(os.path.abspath(os.path.expanduser(root))) if root else None,
                                  created=time.time(), text_keys=_text_keys(text_keys),
                                  multivector_dim=multivector_dim(model))
            backend = self.backend.create_collection(info)

        if text_keys and _text_keys(text_keys) != backend.info.text_keys:
            raise ConfigError(f"collection {name!r} matches metadata keys {list(backend.info.text_keys)} as text; "
                              "they are chosen when a collection is created (copy it into a new one to change them)")
        return Collection(backend, model, store=self)

    def collections(self) -> list[CollectionInfo]:
        """What every collection records (name, space, root), sorted by name."""
        return self.backend.list_collections()

    def delete_collection(self, name: str) -> None:
        """Delete a collection and everything in it."""
        self.backend.drop_collection(name)

    def check(self, *, repair: bool = True) -> CheckReport:
        """Verify integrity; with ``repair``, rebuild derived indexes that disagree with the data."""
        return self.backend.check(repair=repair)

    def close(self) -> None:
        self.backend.close()


def _text_keys(keys: Sequence[str]) -> tuple[str, ...]:
    if isinstance(keys, str):
        raise ConfigError(f"text_keys must be a list of metadata keys; wrap a single one in [...]: [{keys!r}]")
    bad = [k for k in keys if not isinstance(k, str) or not k or k.startswith("$")]
    if bad:
        raise ConfigError(f"text_keys must be metadata keys (non-empty strings not starting with '$'), got {bad[0]!r}")
    return tuple(dict.fromkeys(keys))


def open_store(uri: str | os.PathLike[str] | None, **options: Any) -> Store:
    """Open (creating if needed) the store at a path or URI.

    A path is an embedded store (a directory holding SQLite + HNSW files);
    ``memory://`` keeps everything in memory; ``postgresql://...`` and
    ``qdrant://...`` reach server stores. ``options`` go to the backend (for
    the embedded store: ``exact_limit``, ``durable`` and the HNSW parameters
    of :class:`~crossmodal.stores.embedded.EmbeddedOptions`). The default
    store (from the settings) is ``crossmodal.open_store()`` without a URI.
    """
    if uri is None or (isinstance(uri, str) and not uri.strip()):
        raise ConfigError("give the store's path or URI; crossmodal.open_store() without one opens the default store "
                          "(CROSSMODAL_STORE, else $XDG_DATA_HOME/crossmodal/store)")
    return Store(open_backend(uri, **options))


def _backend(store: Store | VectorStore | str | os.PathLike[str], stack: ExitStack) -> VectorStore:
    """The backend of a Store, a backend itself, or a path/URI opened here (and closed when ``stack`` closes)."""
    if isinstance(store, Store):
        return store.backend
    if isinstance(store, (str, os.PathLike)):
        opened = open_store(store)
        stack.callback(opened.close)
        return opened.backend
    return store


def copy_collections(
    source: Store | VectorStore | str | os.PathLike[str],
    destination: Store | VectorStore | str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    batch_size: int = 1000,
    progress: transfer.Progress | None = None,
) -> transfer.CopyReport:
    """Copy collections (all, or ``names``) from ``source`` to ``destination``, vectors included (nothing is
    embedded again): stores, backends, paths or URIs (a path or URI is opened and closed here). See
    :mod:`crossmodal.stores.transfer`.

    >>> copy_collections("~/.local/share/crossmodal/store", "postgresql://db/app")        # every collection
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    with ExitStack() as stack:
        src = _backend(source, stack)
        dst = _backend(destination, stack)
        return transfer.copy_collections(src, dst, names=names, batch_size=batch_size, progress=progress)
