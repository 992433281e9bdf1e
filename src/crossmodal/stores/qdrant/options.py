"""The Qdrant store's options: from the URI's query string and keyword arguments, checked in one place.

::

    qdrant://qdrant.internal:6333?api_key=...&https=1&index=album,year&precision=f16

A keyword argument to ``open_store`` wins over the same option in the URI,
which wins over the default; a query parameter that is not an option is
refused (Qdrant has no other use for one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ...errors import ConfigError

__all__ = ["QdrantOptions"]

#: characters a collection prefix cannot hold (Qdrant collection names become file and URL path names)
_BAD_PREFIX = '<>:"/\\|?*.'


@dataclass(frozen=True)
class QdrantOptions:
    """How the Qdrant store names, stores and searches its collections, and reaches the server.

    * ``prefix``: Qdrant collections are named ``<prefix>.<name>``, the registry ``<prefix>`` (a plain name);
    * ``precision``: ``f32``, or ``f16`` (Qdrant's ``float16`` vectors);
    * ``hnsw_ef``: the HNSW search beam (at least the candidates a search asks for);
    * ``index``: metadata keys to build payload indexes for (``index=album,year`` in a URI);
    * ``api_key``, ``https``, ``grpc``, ``timeout`` (seconds): how to reach a server.
    """

    prefix: str = "crossmodal"
    api_key: str | None = None
    https: bool = False
    grpc: bool = False
    timeout: int = 30
    hnsw_ef: int = 128
    precision: str = "f32"
    index: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("timeout", "hnsw_ef"):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, int(value))
            except (TypeError, ValueError):
                raise ConfigError(f"store option {name}={value!r} is not a valid int") from None
        object.__setattr__(self, "https", _flag(self.https))
        object.__setattr__(self, "grpc", _flag(self.grpc))
        object.__setattr__(self, "index", _keys(self.index))
        if self.precision not in ("f32", "f16"):
            raise ConfigError(f"precision must be f32 or f16, got {self.precision!r}")
        if not self.prefix or any(c in self.prefix for c in _BAD_PREFIX):
            raise ConfigError(f"Qdrant prefix {self.prefix!r} must be a plain name (no '.', '/', ':' ...)")

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> QdrantOptions:
        """The options of ``uri``'s query string, overridden by the keyword ``options`` that are set."""
        names = [f.name for f in fields(cls)]
        query = dict(parse_qsl(urlsplit(uri).query, keep_blank_values=True))
        unknown = sorted(set(query) - set(names))
        if unknown:
            raise ConfigError(f"unknown Qdrant store option(s) {', '.join(unknown)} in {uri.split('?')[0]}; "
                              f"known: {', '.join(names)}")
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ConfigError(f"unknown Qdrant store option(s) {', '.join(unknown)}; known: {', '.join(names)}")
        picked: dict[str, Any] = {}
        for name in names:
            given = options.get(name)
            # flags and the index list count when given at all (False, []); other keywords only when set
            if given is not None and (given or name in ("https", "grpc", "index")):
                picked[name] = given
            elif name in query and (query[name] or name not in ("hnsw_ef", "timeout")):
                picked[name] = query[name]
        return cls(**picked)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _keys(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"a,b"`` or ``["a", "b"]`` -> ("a", "b"), without empty names."""
    names = value.split(",") if isinstance(value, str) else value
    return tuple(k for k in names if k)
