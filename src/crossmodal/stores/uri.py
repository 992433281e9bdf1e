"""Store URIs -> backends. Which package serves which scheme is data, in :data:`SCHEMES`.

=================================  ===========================================
``/some/dir``, ``file:///dir``     the embedded store (SQLite + HNSW) in that directory
``memory://``                      an in-memory store (tests, notebooks)
``postgresql://...``               PostgreSQL + pgvector (``crossmodal[postgres]``)
``qdrant://host:port``             a Qdrant server (``crossmodal[qdrant]``)
``qdrant+local://PATH``            Qdrant's local mode
=================================  ===========================================

A new backend adds one line here: its scheme and ``"module:class"``, where
``class(uri, **options)`` is a :class:`~crossmodal.stores.base.VectorStore`
(a :class:`~crossmodal.stores.base.StoreBase`). A backend whose client
library is an optional extra raises :class:`StoreUnavailable` naming the
extra when its package is imported without it
(:func:`~crossmodal.stores.base.require_extra`).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StoreUnavailable
from .base import StoreBase, VectorStore

__all__ = ["SCHEMES", "backend_class", "embedded_path", "open_backend"]

#: scheme -> "module:class" (imported only when used)
SCHEMES: dict[str, str] = {
    "memory": "crossmodal.stores.memory:MemoryStore",
    "file": "crossmodal.stores.embedded:EmbeddedStore",
    "postgresql": "crossmodal.stores.pgvector:PgvectorStore",
    "postgres": "crossmodal.stores.pgvector:PgvectorStore",
    "qdrant": "crossmodal.stores.qdrant:QdrantStore",
    "qdrant+local": "crossmodal.stores.qdrant:QdrantLocalStore",
}


def _scheme(uri: str) -> str:
    head, sep, _ = uri.partition("://")
    if sep and head and all(c.isalnum() or c in "+-." for c in head) and len(head) > 1:
        return head.lower()
    return "file"


def embedded_path(uri: str | os.PathLike[str]) -> Path | None:
    """The directory an embedded-store path or ``file://`` URI names (absolute); None for every other scheme."""
    text = os.fspath(uri)
    if not text or _scheme(text) != "file":
        return None
    return Path(text.removeprefix("file://")).expanduser().absolute()


def backend_class(uri: str | os.PathLike[str]) -> type[StoreBase]:
    """The store class for a path or URI, without opening anything (its capabilities, ``shared`` and ``kind``,
    are class attributes)."""
    text = os.fspath(uri)
    if not text:
        raise ConfigError("store location is empty; give a directory or a URI such as memory://")
    scheme = _scheme(text)
    target = SCHEMES.get(scheme)
    if target is None:
        raise ConfigError(f"unknown store scheme {scheme!r} in {text!r}; known: {', '.join(sorted(SCHEMES))}, "
                          "or a directory path for the embedded store")
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # a backend's missing extra is its own StoreUnavailable; this is anything else
        if isinstance(exc, ModuleNotFoundError) and exc.name and module_name.startswith(exc.name):
            raise StoreUnavailable(f"the {scheme}:// store is not available in this version of crossmodal") from exc
        detail = f"{exc.name} is missing" if exc.name else (str(exc).splitlines() or ["it failed"])[0][:200]
        raise StoreUnavailable(f"the {scheme}:// store cannot be loaded ({detail})") from exc
    cls: type[StoreBase] = getattr(module, name)
    return cls


def open_backend(uri: str | os.PathLike[str], **options: Any) -> VectorStore:
    """The backend for a path or URI (see the table above), opened with ``options``."""
    cls = backend_class(uri)
    text = os.fspath(uri)
    if _scheme(text) == "file" and text.startswith("file://"):
        text = text[len("file://"):]
    store: VectorStore = cls(text, **options)  # type: ignore[call-arg]
    return store
