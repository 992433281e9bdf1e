"""The public API's edge for Python callers: what ``crossmodal.open_store()`` opens when given no store.

Library code takes explicit arguments and never reads the environment; the
CLI and the server read the settings once at their edge, and so does this
function, for a caller who names no store: the default store of the
settings (``$CROSSMODAL_STORE``, else ``$XDG_DATA_HOME/crossmodal/store``).
"""

from __future__ import annotations

import os
from typing import Any

from .settings import Settings
from .store import Store
from .store import open_store as _open_store

__all__ = ["open_store"]


def open_store(uri: str | os.PathLike[str] | None = None, **options: Any) -> Store:
    """Open (creating if needed) the store at a path or URI, or the default store when none is given.

    A path is an embedded store (a directory holding SQLite + HNSW files);
    ``memory://`` keeps everything in memory; ``postgresql://...`` and
    ``qdrant://...`` reach server stores. ``options`` go to the backend (see
    :func:`crossmodal.store.open_store`).
    """
    return _open_store(Settings.from_env().store if uri is None else uri, **options)
