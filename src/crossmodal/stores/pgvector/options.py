"""The pgvector store's options: from the URI's query string and keyword arguments, checked in one place.

::

    postgresql://user:pass@db:5432/app?schema=photos&precision=f16&ef_search=200&sslmode=require

Our options (below) are taken out of the query string; every other query
parameter (``sslmode`` above) goes to libpq. A keyword argument to
``open_store`` wins over the same option in the URI, which wins over the
default.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ...errors import ConfigError

__all__ = ["PgvectorOptions", "libpq_uri", "masked"]


@dataclass(frozen=True)
class PgvectorOptions:
    """How the pgvector store lays out, searches and connects.

    * ``schema``: the PostgreSQL schema holding the store's tables (1-48 characters);
    * ``precision``: ``f32`` (``vector``) or ``f16`` (``halfvec``: half the disk and memory, scores within ~1e-3);
    * ``m``, ``ef_construction``: the HNSW build (16 and 128: recall@10 >= 0.98 at ``ef_search`` 100);
    * ``ef_search``: the HNSW search beam (1-1000);
    * ``iterative_scan``: pgvector 0.8's iterative index scans (``relaxed_order``, ``strict_order`` or ``off``);
    * ``pool_min``, ``pool_max``: the connection pool's size; ``connect_timeout``: seconds;
    * ``maintenance_work_mem``: memory for an HNSW build.
    """

    schema: str = "crossmodal"
    precision: str = "f32"
    # ef_construction 128 (pgvector's default is 64): the graph reaches recall@10 >= 0.98 at ef_search 100
    m: int = 16
    ef_construction: int = 128
    ef_search: int = 100
    iterative_scan: str = "relaxed_order"
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: float = 10.0
    maintenance_work_mem: str = "1GB"

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _cast(f.name, getattr(self, f.name), _TYPES[f.name], ""))
        if self.precision not in ("f32", "f16"):
            raise ConfigError(f"precision must be f32 or f16, got {self.precision!r}")
        if self.iterative_scan not in ("relaxed_order", "strict_order", "off"):
            raise ConfigError(f"iterative_scan must be relaxed_order, strict_order or off, got {self.iterative_scan!r}")
        if not 1 <= self.ef_search <= 1000:
            raise ConfigError(f"ef_search must be from 1 to 1000, got {self.ef_search}")
        if not self.schema or len(self.schema) > 48:
            raise ConfigError(f"schema name {self.schema!r} must be 1-48 characters")

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> PgvectorOptions:
        """The options of ``uri``'s query string, overridden by the keyword ``options`` that are not None."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ConfigError(f"unknown PostgreSQL store option(s) {', '.join(unknown)}; known: {', '.join(names)}")
        ours = _split_uri(uri)[1]
        shown = masked(uri)
        picked = {}
        for name in names:
            raw = options[name] if options.get(name) is not None else ours.get(name)
            if raw is not None:
                picked[name] = _cast(name, raw, _TYPES[name], f" in {shown}")
        return cls(**picked)


_TYPES: dict[str, type] = {"schema": str, "precision": str, "m": int, "ef_construction": int, "ef_search": int,
                           "iterative_scan": str, "pool_min": int, "pool_max": int, "connect_timeout": float,
                           "maintenance_work_mem": str}


def _cast(name: str, raw: Any, kind: type, where: str) -> Any:
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"store option {name}={raw!r}{where} is not a valid {kind.__name__}") from None


def masked(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (for messages and ``Store.uri``)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _split_uri(uri: str) -> tuple[str, dict[str, str]]:
    """libpq's URI (our options removed) and our options from the query string."""
    parts = urlsplit(uri)
    ours: dict[str, str] = {}
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _TYPES:
            ours[key] = value
        else:
            rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote))), ours


def libpq_uri(uri: str) -> str:
    """``uri`` as libpq takes it: without the query parameters that are our options."""
    return _split_uri(uri)[0]
