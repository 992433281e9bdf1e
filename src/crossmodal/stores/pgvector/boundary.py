"""psycopg's and the pool's errors as crossmodal's, mapped where they enter (one context manager)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import PoolTimeout

from ...errors import CollectionNotFound, InputError, StoreError, StoreUnavailable

__all__ = ["mapped"]


@contextmanager
def mapped(where: str, collection: str | None = None) -> Iterator[None]:
    """psycopg and pool errors -> crossmodal's, at the boundary (``collection``: the one being used, if any)."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        if collection is not None:
            raise CollectionNotFound(f"collection {collection!r} was deleted from {where}") from exc
        raise StoreUnavailable(f"the crossmodal schema is missing at {where}: {exc}") from exc
    except PoolTimeout as exc:
        raise StoreUnavailable(f"no connection to {where} became available: {exc}") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"PostgreSQL at {where}: {str(exc).strip()}") from exc
    except psycopg.DataError as exc:
        raise InputError(f"PostgreSQL at {where} refused the data: {str(exc).strip()}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL at {where}: {str(exc).strip()}") from exc
