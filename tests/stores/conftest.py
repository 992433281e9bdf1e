"""The stores every contract test runs against. A new store adds ONE entry to STORES.

Each entry opens a :class:`crossmodal.Store` in a fresh temporary directory
(``tmp_path``); ``reopens`` says whether a second ``open`` of the same
directory sees the same data (so persistence is tested too); ``shared``
whether several processes and machines may write the store at once (what the
store must say of itself). A store that needs a service can skip itself
inside ``open`` with ``pytest.skip``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import crossmodal

from .servers import open_pgvector, open_qdrant_server, stop_servers


@dataclass(frozen=True)
class StoreCase:
    name: str
    open: Callable[[Path], crossmodal.Store]
    reopens: bool = True
    shared: bool = False


STORES: list[StoreCase] = [
    StoreCase("memory", lambda tmp: crossmodal.open_store("memory://"), reopens=False),
    StoreCase("embedded", lambda tmp: crossmodal.open_store(tmp / "store")),
    # exact_limit=0 sends every search through the HNSW path, so it must agree with exact search too
    StoreCase("embedded-hnsw", lambda tmp: crossmodal.open_store(tmp / "store", exact_limit=0, sync_every=7)),
    # server stores (issue 6; see servers.py): a real PostgreSQL + pgvector, Qdrant local mode, a Qdrant server if set.
    # Qdrant's local mode on disk commits each point to SQLite (minutes here): test_qdrant.py tests its persistence.
    StoreCase("pgvector", open_pgvector, shared=True),
    StoreCase("qdrant-local", lambda tmp: crossmodal.open_store("qdrant+local://:memory:"), reopens=False),
    StoreCase("qdrant-server", open_qdrant_server, shared=True),
]


@pytest.fixture(scope="session", autouse=True)
def _servers() -> Iterator[None]:
    yield
    stop_servers()


@pytest.fixture(params=STORES, ids=[c.name for c in STORES])
def store_case(request: pytest.FixtureRequest) -> StoreCase:
    return request.param


@pytest.fixture
def store(store_case: StoreCase, tmp_path: Path) -> Iterator[crossmodal.Store]:
    st = store_case.open(tmp_path)
    yield st
    st.close()
