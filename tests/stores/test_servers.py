"""The tests' PostgreSQL: the first bundled PostgreSQL whose pgvector works on this CPU is the one used."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from . import servers
from .pgvector_portable import Probe, crash_line

SIGILL = "LOG:  client backend (PID 4242) was terminated by signal 4: Illegal instruction"


class _Server:
    def __init__(self, pgdata: Path, major: int) -> None:
        self.pgdata, self.major = pgdata, major


@pytest.fixture
def fake_servers(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[int, Probe], list[tuple[int, bool]]]:
    """Servers that start instantly and probe as ``probes`` says; ``stopped`` records (major, crashed)."""
    probes: dict[int, Probe] = {}
    stopped: list[tuple[int, bool]] = []
    monkeypatch.setattr(servers, "_reap", lambda: None)
    monkeypatch.setattr(servers, "start_server", _Server)
    monkeypatch.setattr(servers, "probe", lambda server, major: probes[major])
    monkeypatch.setattr(servers, "stop_server", lambda server, crashed=False: stopped.append((server.major, crashed)))
    return probes, stopped


def test_a_pgvector_that_crashes_on_this_cpu_falls_back_to_the_next_bundled_postgresql(fake_servers) -> None:
    probes, stopped = fake_servers
    probes.update({18: Probe(18, "0.8.5", SIGILL, None), 16: Probe(16, "0.8.0", None, None)})
    server, folder, result = servers._start_pg()
    try:
        assert (server.major, result.major, result.vector_version) == (16, 16, "0.8.0")
        assert stopped == [(18, True)]  # the crashed one is stopped at once (immediately: it is recovering)
        assert server.pgdata == folder / "data" and (folder / "owner.pid").read_text().isdigit()
    finally:
        shutil.rmtree(folder)


def test_when_no_bundled_pgvector_works_the_tests_fail_naming_the_crash_and_the_fix(fake_servers) -> None:
    probes, stopped = fake_servers
    probes.update({18: Probe(18, None, SIGILL, None), 16: Probe(16, "0.8.5", SIGILL, None)})
    with pytest.raises(pytest.fail.Exception) as failure:
        servers._start_pg()
    message = str(failure.value)
    assert "PostgreSQL 18 crashed the server" in message and "PostgreSQL 16 crashed the server" in message
    assert "signal 4: Illegal instruction" in message and "python -m tests.stores.pgvector_portable" in message
    assert stopped == [(18, True), (16, True)]


def test_the_crash_line_is_read_from_the_server_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert crash_line(log, wait=0) is None
    log.write_text("LOG:  database system is ready to accept connections\n")
    assert crash_line(log, wait=0) is None
    log.write_text(f"LOG:  starting PostgreSQL 18.4\n2026-01-01 00:00:00 UTC [1] {SIGILL}\nLOG:  terminating\n")
    assert crash_line(log, wait=0) == f"2026-01-01 00:00:00 UTC [1] {SIGILL}"
