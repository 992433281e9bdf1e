"""The embedded store's options, parsed and checked in one place.

The store's location is a directory path (or ``file://`` URI), which has no
query string (a ``?`` may be part of a directory name), so its options come as
keyword arguments to ``open_store`` only::

    crossmodal.open_store("~/photos-index", exact_limit=50_000, durable=False)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ...errors import ConfigError
from ..base import MODALITIES
from .fanout import usable_cpus
from .views import AnnParams

__all__ = ["ANN_DTYPES", "EmbeddedOptions"]

#: precisions the HNSW files can store vectors in
ANN_DTYPES = ("bf16", "f16", "f32", "f64", "i8")


@dataclass(frozen=True)
class EmbeddedOptions:
    """How the embedded store searches and writes.

    * ``exact_limit``: search exactly while a modality (or a filter's result) has at most this many items;
    * ``durable``: fsync every commit (default True; False survives a killed process but maybe not a power cut);
    * ``sync_every``: after this many written items, a writer brings large HNSW views up to date (and saves
      them when they lag enough), so an interrupted ingest leaves little for the next reader to catch up
      (None or 0: a quarter of ``exact_limit``, at least 1,000);
    * ``read_ahead``: when a search's rows are not in the page cache, ask the kernel for all of them at once
      before reading them (default True; Linux only, elsewhere a no-op; see ``stores/embedded/pages.py``);
    * ``search_threads``: how many threads one search uses to search its modalities' views at once (None: one
      per usable CPU, at most 3, the number of modalities; 1: one after another in the calling thread; see
      ``stores/embedded/fanout.py``);
    * ``connectivity``, ``expansion_add``, ``expansion_search``, ``ann_dtype``: HNSW parameters.
    """

    exact_limit: int = 10_000
    durable: bool = True
    sync_every: int | None = None
    read_ahead: bool = True
    search_threads: int | None = None
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64
    ann_dtype: str = "bf16"

    def __post_init__(self) -> None:
        for name in ("exact_limit", "sync_every", "search_threads", "connectivity", "expansion_add", "expansion_search"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"store option {name}={value!r} is not a valid int") from None
            object.__setattr__(self, name, number)
        object.__setattr__(self, "durable", bool(self.durable))
        object.__setattr__(self, "read_ahead", bool(self.read_ahead))
        if self.exact_limit < 0:
            raise ConfigError(f"exact_limit must be 0 or more, got {self.exact_limit}")
        if self.sync_every is not None and self.sync_every < 0:
            raise ConfigError(f"sync_every must be 0 or more, got {self.sync_every}")
        if self.search_threads is not None and self.search_threads < 1:
            raise ConfigError(f"search_threads must be at least 1, got {self.search_threads}")
        if self.connectivity < 2:
            raise ConfigError(f"connectivity must be at least 2, got {self.connectivity}")
        for name in ("expansion_add", "expansion_search"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.ann_dtype not in ANN_DTYPES:
            raise ConfigError(f"ann_dtype must be one of {', '.join(ANN_DTYPES)}, got {self.ann_dtype!r}")

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> EmbeddedOptions:
        """The options for the store at ``uri`` (a directory: only keyword ``options``); unknown ones are refused."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"unknown embedded store option(s) {', '.join(unknown)} for {uri}; "
                              f"known: {', '.join(known)}")
        return cls(**{k: v for k, v in options.items() if v is not None})

    @property
    def save_every(self) -> int:
        """Written items between a writer's HNSW catch-ups (``sync_every``, or its default)."""
        return self.sync_every or max(1_000, self.exact_limit // 4)

    @property
    def threads(self) -> int:
        """Threads one search uses (``search_threads``, or its default for this process)."""
        return self.search_threads or min(len(MODALITIES), usable_cpus())

    @property
    def ann_params(self) -> AnnParams:
        return AnnParams(self.connectivity, self.expansion_add, self.expansion_search, self.ann_dtype)
