"""Qdrant (``qdrant://HOST:PORT`` and ``qdrant+local://PATH``, the ``qdrant`` extra). See :mod:`.store`.

=================  ===========================================================
``store``          :class:`QdrantStore` (a server), :class:`QdrantLocalStore` (local mode)
``collection``     :class:`QdrantCollection`: points, writes, reads and search
``options``        :class:`QdrantOptions`: URI query and keyword options
``registry``       which Qdrant collection holds which collection; point ids; errors
``filters``        crossmodal filters as Qdrant payload filters
=================  ===========================================================
"""

from ..base import require_extra

# the client library comes with the extra; without it, importing this package says which extra to install
require_extra(("qdrant_client",), store="Qdrant", extra="qdrant")

from .collection import QdrantCollection  # noqa: E402
from .options import QdrantOptions  # noqa: E402
from .registry import NAMESPACE, point_id  # noqa: E402
from .store import QdrantLocalStore, QdrantStore  # noqa: E402

__all__ = ["NAMESPACE", "QdrantCollection", "QdrantLocalStore", "QdrantOptions", "QdrantStore", "point_id"]
