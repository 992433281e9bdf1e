"""Stores: where collections keep their items. See :mod:`crossmodal.stores.base` for the protocol.

=================  ===========================================================
``base``           the protocols, their defaults (BackendBase, StoreBase), records
``filters``        the filter language, selections and their reference semantics
``uri``            scheme -> backend
``memory``         an in-memory store (``memory://``; tests, and the reference)
``embedded/``      the default: SQLite + HNSW in one directory
``pgvector/``      PostgreSQL + pgvector (``postgresql://``)
``qdrant/``        Qdrant (``qdrant://``, ``qdrant+local://``)
``transfer``       copying collections between backends
``codec``          file names that are not valid Unicode, as stored text
=================  ===========================================================
"""

from .base import (
    MODALITIES,
    BackendBase,
    CheckReport,
    CollectionBackend,
    CollectionInfo,
    Hit,
    Record,
    StoreBase,
    VectorStore,
)
from .filters import Filter, Selection, matches, parse_where, select
from .uri import SCHEMES, backend_class, open_backend

__all__ = [
    "MODALITIES",
    "SCHEMES",
    "BackendBase",
    "CheckReport",
    "CollectionBackend",
    "CollectionInfo",
    "Filter",
    "Hit",
    "Record",
    "Selection",
    "StoreBase",
    "VectorStore",
    "backend_class",
    "matches",
    "open_backend",
    "parse_where",
    "select",
]
