"""Searching a collection by several signals: dense vectors, keywords (BM25), and their fusion.

:func:`~crossmodal.retrieval.search.search_signals` is what
``Collection.search(using=...)`` runs; :mod:`~crossmodal.retrieval.fusion`
holds reciprocal rank fusion and weighted fusion, written to be checked by hand.
"""

from .fusion import Fusion, fuse
from .search import USING, search_signals

__all__ = ["USING", "Fusion", "fuse", "search_signals"]
