"""The embedded store (the default): SQLite + HNSW in one directory. See :mod:`.store`.

=================  ===========================================================
``store``          :class:`EmbeddedStore`: the directory, its collections, check, close
``collection``     :class:`EmbeddedCollection`: writes, reads and the search plan
``options``        :class:`EmbeddedOptions`: exact limit, durability, HNSW parameters
``database``       SQLite connections and transactions
``sqlite``         the schema, metadata rows and filters as SQL
``derived``        HNSW and exact views kept in step with SQLite, their files
``views``          the views themselves (numpy, usearch)
``check``          ``crossmodal store check``
=================  ===========================================================
"""

from .collection import EmbeddedCollection
from .options import EmbeddedOptions
from .store import EmbeddedStore

__all__ = ["EmbeddedCollection", "EmbeddedOptions", "EmbeddedStore"]
