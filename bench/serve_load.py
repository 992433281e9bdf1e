"""Load on the HTTP service: requests/s and p50/p99 latency, with and without request batching.

The script starts each server in its own process on 127.0.0.1 (one at a time)
and drives it from this process with N concurrent clients (asyncio, one
keep-alive HTTP/1.1 connection each, through a minimal client: httpx itself
tops out near 50 requests/s at 64 connections on 2 cores, which would measure
the client, not the server). Every point runs for ``--duration`` seconds or
``--max-requests`` requests, whichever comes first, after a short warm-up.

Servers (same model, same machine, same run)
  crossmodal            ``crossmodal serve``'s app: micro-batching across requests (the product)
  crossmodal-unbatched  the same app with ``--max-batch 1`` (isolates what batching buys)
  plain                 the baseline: a plain FastAPI endpoint, one request -> one ``embed_texts([text])``
                        call in FastAPI's thread pool, the way a service is usually first written.
                        (infinity, the usual standalone peer, cannot be installed offline with a
                        model, so the plain endpoint stands in for it.)

Loads
  embed    POST /v1/embeddings with one short caption per request (every server)
  search   POST /v1/collections/bench/search {"text": caption, "top_k": 10} (crossmodal servers), on a
           collection of ``--collection-size`` captions in an embedded store

With ``--rounds N`` every server runs N times, in turn, and each ratio is the median of the ratios
within a round, so a noisy neighbour affects both sides of a ratio. Each point also reports the CPU
time the server process spent per request (from /proc): on a shared machine that is the steadier
measure of what batching saves, since other processes change the wall clock but not the work.

Also measured: the library's own batch throughput (``Model.embed_texts`` on batches of 64), which the
batched service should approach under load. The target: crossmodal at concurrency 64 serves at least
3x the plain endpoint's requests/s.

The model is the full-size ViT-B/32 architecture (random weights; bench/make_models.py builds it),
``--model DIR``, or ``--model fake`` (the test suite's arithmetic encoder: what is left is the cost
of serving itself).

Usage
  python bench/serve_load.py --rounds 3                        # full run (about 15 minutes)
  python bench/serve_load.py --duration 3 --max-requests 400   # quick check
  python bench/serve_load.py --json results.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

HOST = "127.0.0.1"  # loopback only, always
MAX_CONCURRENCY = 256


# -- server side (run in a child process) -------------------------------------------------------------------------


def _plain_app(model: Any) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/embeddings")
    def embed(body: dict[str, Any]) -> dict[str, Any]:  # a sync route: FastAPI runs it in its thread pool
        text = body["input"] if isinstance(body["input"], str) else body["input"][0]
        vector = model.embed_texts([text])[0]
        return {"object": "list", "model": model.name, "usage": {"prompt_tokens": 0, "total_tokens": 0},
                "data": [{"object": "embedding", "index": 0, "embedding": vector.tolist()}]}

    return app


def _load_model(name: Path | str, threads: int | None) -> Any:
    """The benchmark model, or with ``fake`` the test suite's arithmetic fake (to measure pure serving overhead)."""
    import crossmodal

    if str(name) == "fake":
        from crossmodal.testing.fake import fake_model

        return fake_model(dim=512)
    return crossmodal.load_model(name, threads=threads, offline=True)


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from crossmodal.server import BatchingSettings, ServerSettings, create_app
    from crossmodal.store import open_store

    model = _load_model(args.model, args.threads)
    if args.role == "plain":
        app = _plain_app(model)
    else:
        store = open_store(args.store)
        col = store.collection("bench", model)
        if col.count() < args.collection_size:
            from inputs import make_captions

            col.add_texts(make_captions(args.collection_size, seed=1))
        batching = BatchingSettings(max_items=1 if args.role == "crossmodal-unbatched" else args.max_batch)
        app = create_app(ServerSettings(batching=batching), model=model, store=store)
    print("ready", flush=True)
    uvicorn.run(app, host=HOST, port=args.port, log_level="warning", access_log=False)


# -- client side ---------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """One server child process, started and stopped around a set of measurements."""

    def __init__(self, role: str, args: argparse.Namespace, store: str) -> None:
        self.role = role
        self.port = _free_port()
        cmd = [sys.executable, __file__, "--serve", role, "--port", str(self.port), "--model", str(args.model),
               "--store", store, "--collection-size", str(args.collection_size), "--max-batch", str(args.max_batch)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        self.log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would stall the server
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        self.url = f"http://{HOST}:{self.port}"

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used (all threads), from /proc; None where there is no /proc."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self, timeout: float = 600) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.role} server exited:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    ready = self.url + ("/readyz" if self.role != "plain" else "/healthz")
                    if httpx.get(ready, timeout=1).status_code == 200:
                        return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.role} server not ready after {timeout:.0f}s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        tail = self.output().strip().splitlines()[-5:]
        if any("Error" in line or "Traceback" in line for line in tail):
            print(f"{self.role} server log (tail):\n  " + "\n  ".join(tail), file=sys.stderr)
        self.log.close()


class _Connection:
    """A minimal HTTP/1.1 keep-alive client for loopback load: a few microseconds of Python per request,
    so the load generator is not what limits the numbers (httpx's pool is, at 64 connections on 2 cores)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n").encode()
        self.writer.write(head + payload)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                self.writer = None
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _load(url: str, path: str, bodies: list[dict[str, Any]], concurrency: int, duration: float,
                max_requests: int, warmup: float, cpu: Any = lambda: None) -> dict[str, Any]:
    host, port = url.split("//", 1)[1].split(":")
    payloads = [json.dumps(b).encode() for b in bodies]
    latencies: list[float] = []
    errors = 0
    issued = 0
    connections = [_Connection(host, int(port)) for _ in range(concurrency)]

    async def worker(conn: _Connection, stop_at: float, record: bool) -> None:
        nonlocal errors, issued
        while time.perf_counter() < stop_at and (not record or issued < max_requests):
            payload = payloads[issued % len(payloads)]
            if record:
                issued += 1
            t0 = time.perf_counter()
            try:
                status = await conn.post(path, payload)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                errors += 1
                continue
            if status != 200:
                errors += 1
            elif record:
                latencies.append(time.perf_counter() - t0)

    try:
        now = time.perf_counter()
        await asyncio.gather(*(worker(conn, now + warmup, False) for conn in connections))
        start, cpu_start = time.perf_counter(), cpu()
        await asyncio.gather(*(worker(conn, start + duration, True) for conn in connections))
        elapsed, cpu_end = time.perf_counter() - start, cpu()
    finally:
        for conn in connections:
            conn.close()
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "cpu_ms_per_request": (round((cpu_end - cpu_start) * 1000 / len(latencies), 2)
                               if cpu_start is not None and cpu_end is not None and latencies else None),
    }


def _batch_totals(url: str) -> tuple[float, float]:
    """(texts embedded, model calls) so far, from the service's own metrics."""
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        for name in ("crossmodal_batch_items_sum", "crossmodal_batch_items_count"):
            if line.startswith(name + '{kind="text"}'):
                values[name] = float(line.rsplit(" ", 1)[1])
    return values.get("crossmodal_batch_items_sum", 0.0), values.get("crossmodal_batch_items_count", 0.0)


def library_rate(model_dir: Path, captions: list[str], threads: int | None) -> dict[str, float]:
    """The library alone: texts/s at batch 64, and CPU ms per text at batch 1 and at batch 64.

    The CPU ratio is the most any request batching can save on this machine: a service that batches
    perfectly costs what the batch-64 call costs per text; one request per inference costs batch 1's.
    """
    model = _load_model(model_dir, threads)
    model.embed_texts(captions[:64])
    single = captions[:64]
    c0 = time.process_time()
    for text in single:
        model.embed_texts([text])
    cpu_single = (time.process_time() - c0) / len(single)
    t0, c0 = time.perf_counter(), time.process_time()
    model.embed_texts(captions, batch_size=64)
    wall, cpu_batch = time.perf_counter() - t0, (time.process_time() - c0) / len(captions)
    return {"texts_per_s": round(len(captions) / wall, 1), "cpu_ms_per_text_batch1": round(cpu_single * 1000, 2),
            "cpu_ms_per_text_batch64": round(cpu_batch * 1000, 2), "batching_gain": round(cpu_single / cpu_batch, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="model directory (default: bench ViT-B/32 ONNX), or 'fake' to measure serving overhead alone")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per point (default 15)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="requests per point at most")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unrecorded load before each point")
    parser.add_argument("--collection-size", type=int, default=2000)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    parser.add_argument("--servers", nargs="+", default=["crossmodal", "crossmodal-unbatched", "plain"],
                        choices=["crossmodal", "crossmodal-unbatched", "plain"])
    parser.add_argument("--rounds", type=int, default=1, help="run every server this many times, in turn")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    # child-process mode
    parser.add_argument("--serve", dest="role", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--store", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.model is None:
        from make_models import make_models

        args.model = make_models()["onnx"]
    if args.role:
        serve(args)
        return
    if max(args.concurrency) > MAX_CONCURRENCY:
        parser.error(f"concurrency is capped at {MAX_CONCURRENCY}")

    from inputs import make_captions

    captions = make_captions(2000, seed=0)
    embed_bodies = [{"input": c} for c in captions]
    search_bodies = [{"text": c, "top_k": 10} for c in captions]
    library = library_rate(args.model, captions[:512], args.threads)
    results: dict[str, Any] = {"model": str(args.model), "cpus": os.cpu_count(), "duration": args.duration,
                               "library": library, "library_texts_per_s": library["texts_per_s"], "points": []}
    print(f"library: {library['texts_per_s']} texts/s in batches of 64; CPU per text {library['cpu_ms_per_text_batch1']} ms "
          f"at batch 1, {library['cpu_ms_per_text_batch64']} ms at batch 64: batching can save at most "
          f"{library['batching_gain']}x here", flush=True)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        for round_ in range(args.rounds):
            for role in args.servers:
                server = Server(role, args, store=str(Path(tmp) / "store"))
                try:
                    server.wait_ready()
                    loads = [("embed", "/v1/embeddings", embed_bodies)]
                    if role != "plain":
                        loads.append(("search", "/v1/collections/bench/search", search_bodies))
                    for load, path, bodies in loads:
                        for c in args.concurrency:
                            before = _batch_totals(server.url) if role != "plain" else None
                            point = asyncio.run(_load(server.url, path, bodies, c, args.duration, args.max_requests,
                                                      args.warmup, server.cpu_seconds))
                            point.update(server=role, load=load, concurrency=c, round=round_)
                            if before is not None:
                                after = _batch_totals(server.url)
                                calls = after[1] - before[1]
                                point["texts_per_model_call"] = round((after[0] - before[0]) / calls, 1) if calls else None
                            results["points"].append(point)
                            print(f"[{round_}] {role:21s} {load:6s} c={c:<3d} {point['rps']:8.1f} req/s  "
                                  f"p50 {point['p50_ms']} ms  p99 {point['p99_ms']} ms  "
                                  f"server CPU {point['cpu_ms_per_request']} ms/request  "
                                  f"texts/model call {point.get('texts_per_model_call', 1.0)}  "
                                  f"({point['requests']} requests, {point['errors']} errors)", flush=True)
                finally:
                    server.stop()
    _summary(results, max(args.concurrency))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _summary(results: dict[str, Any], top: int) -> None:
    """Ratios at the top concurrency, taken within each round (both sides saw the same machine), then the median."""
    rounds = sorted({p["round"] for p in results["points"]})

    def rps(server: str, load: str, round_: int) -> float | None:
        found = [p["rps"] for p in results["points"]
                 if (p["server"], p["load"], p["concurrency"], p["round"]) == (server, load, top, round_)]
        return found[0] if found else None

    def median_ratio(a: str, b: str) -> float | None:
        ratios = [x / y for r in rounds if (x := rps(a, "embed", r)) and (y := rps(b, "embed", r))]
        return statistics.median(ratios) if ratios else None

    print()
    ratio = median_ratio("crossmodal", "plain")
    if ratio is not None:
        results["ratio_vs_plain"] = round(ratio, 2)
        print(f"embed at c={top}: crossmodal / plain = {ratio:.2f}x (median of {len(rounds)} round(s); "
              f"{'meets' if ratio >= 3 else 'MISSES'} the 3x target)")
    def cpu(server: str, r: int) -> float | None:
        found = [p["cpu_ms_per_request"] for p in results["points"]
                 if (p["server"], p["load"], p["concurrency"], p["round"]) == (server, "embed", top, r)]
        return found[0] if found else None

    cpu_ratios = [y / x for r in rounds if (x := cpu("crossmodal", r)) and (y := cpu("plain", r))]
    if cpu_ratios:
        results["cpu_ratio_vs_plain"] = round(statistics.median(cpu_ratios), 2)
        print(f"embed at c={top}: server CPU per request, plain / crossmodal = {results['cpu_ratio_vs_plain']:.2f}x "
              "(what the throughput ratio becomes on an otherwise idle machine, when inference is CPU-bound)")
    ratio = median_ratio("crossmodal", "crossmodal-unbatched")
    if ratio is not None:
        results["ratio_vs_unbatched"] = round(ratio, 2)
        print(f"embed at c={top}: batching on / off (same app) = {ratio:.2f}x")
    batched = [x for r in rounds if (x := rps("crossmodal", "embed", r))]
    if batched:
        share = statistics.median(batched) / results["library_texts_per_s"]
        results["share_of_library"] = round(share, 2)
        print(f"embed at c={top}: crossmodal serves {share:.0%} of the library's batch throughput "
              f"({results['library_texts_per_s']} texts/s)")


if __name__ == "__main__":
    main()
