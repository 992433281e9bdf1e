"""Store URIs -> backends. Which module serves which scheme is data, in :data:`SCHEMES`.

=================================  ===========================================
``/some/dir``, ``file:///dir``     the embedded store (SQLite + HNSW) in that directory
``memory://``                      an in-memory store (tests, notebooks)
``postgresql://...``               PostgreSQL + pgvector (``crossmodal[postgres]``)
``qdrant://host:port``             a Qdrant server (``crossmodal[qdrant]``)
``qdrant+local://PATH``            Qdrant's local mode
=================================  ===========================================

A new backend adds one line here: its scheme and ``"module:factory"``, where
``factory(uri, **options)`` returns a :class:`~crossmodal.stores.base.VectorStore`
(and, if its client library is an optional extra, a line in :data:`EXTRAS`:
without the library, opening the store raises :class:`StoreUnavailable` naming
the extra to install).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StoreUnavailable
from .base import VectorStore

__all__ = ["EXTRAS", "SCHEMES", "embedded_path", "open_backend"]

#: scheme -> "module:factory" (imported only when used)
SCHEMES: dict[str, str] = {
    "memory": "crossmodal.stores.memory:MemoryStore",
    "file": "crossmodal.stores.embedded:EmbeddedStore",
    "postgresql": "crossmodal.stores.pgvector:PgvectorStore",
    "postgres": "crossmodal.stores.pgvector:PgvectorStore",
    "qdrant": "crossmodal.stores.qdrant:QdrantStore",
    "qdrant+local": "crossmodal.stores.qdrant:QdrantStore",
}


#: scheme -> the ``pip install 'crossmodal[EXTRA]'`` extra its client library comes with
EXTRAS: dict[str, str] = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "qdrant": "qdrant",
    "qdrant+local": "qdrant",
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


def open_backend(uri: str | os.PathLike[str], **options: Any) -> VectorStore:
    """The backend for a path or URI (see the table above)."""
    text = os.fspath(uri)
    if not text:
        raise ConfigError("store location is empty; give a directory or a URI such as memory://")
    scheme = _scheme(text)
    target = SCHEMES.get(scheme)
    if target is None:
        raise ConfigError(f"unknown store scheme {scheme!r} in {text!r}; known: {', '.join(sorted(SCHEMES))}, "
                          "or a directory path for the embedded store")
    module_name, _, factory = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name and module_name.startswith(exc.name):
            raise StoreUnavailable(f"the {scheme}:// store is not available in this version of crossmodal") from exc
        # A store's client library is an optional extra: not having it is a store problem, not a model one.
        extra = EXTRAS.get(scheme, scheme)
        detail = f"{exc.name} is missing" if exc.name else (str(exc).splitlines() or ["it failed to import"])[0][:200]
        raise StoreUnavailable(f"the {scheme}:// store needs the {extra!r} extra, which is not installed "
                               f"({detail}): pip install 'crossmodal[{extra}]'") from exc
    if scheme == "file" and text.startswith("file://"):
        text = text[len("file://"):]
    return getattr(module, factory)(text, **options)
