"""Stores: where collections keep their items. See :mod:`crossmodal.stores.base` for the protocol.

``embedded`` (the default: SQLite + HNSW in one directory), ``memory`` (tests),
and server stores added by URI scheme in :mod:`crossmodal.stores.uri`.
"""

from .base import (
    MODALITIES,
    CheckReport,
    CollectionBackend,
    CollectionInfo,
    Hit,
    Record,
    Selection,
    VectorStore,
)
from .filters import Filter, matches, parse_where
from .uri import SCHEMES, open_backend

__all__ = [
    "MODALITIES",
    "SCHEMES",
    "CheckReport",
    "CollectionBackend",
    "CollectionInfo",
    "Filter",
    "Hit",
    "Record",
    "Selection",
    "VectorStore",
    "matches",
    "open_backend",
    "parse_where",
]
