"""Embedding throughput: crossmodal (exact, fast) against fastembed, transformers and a raw ORT session.

Everything runs on the same machine, in the same run, on the same inputs:
200 real-photo JPEGs (about 500x375, see bench/inputs.py) and 2,000 short
captions, with the full-size ViT-B/32 architecture (bench/make_models.py) on
``--threads`` CPU threads. Each contender runs in a fresh process (so thread
pools, caches and memory do not leak between them), is warmed up, then timed
end to end: JPEG files -> unit-norm vectors, captions -> unit-norm vectors.

Contenders
  crossmodal-exact / -fast   Model.embed_images(paths) / embed_texts(captions)
  crossmodal-*-model         the same encoder fed already preprocessed tensors (model-only rate)
  fastembed                  ImageEmbedding / TextEmbedding on the same ONNX files
                             (specific_model_path), default batch sizes; text vectors normalized after
  transformers               CLIPModel (torch, fp32) + its PIL processor, batch 32 / 256
  ort-raw                    one fp32 onnxruntime session, fastembed's options; images: preprocessed
                             pixels at batch 8 (model-only); texts: batch 256 padded to the longest
  ort-raw-77                 texts padded to 77 tokens (first 256 captions)

Rounds run every contender once, in turn; ratios are taken within a round and
their median reported, so a noisy neighbour affects both sides of a ratio.
``other CPU`` is the share of the machine that other processes used meanwhile.

Usage
  python bench/embed_throughput.py                      # full run, 3 rounds
  python bench/embed_throughput.py --images 40 --texts 300 --rounds 1     # quick check
  python bench/embed_throughput.py --scaling            # also 1 vs 2 threads
  python bench/embed_throughput.py --rss 10000          # peak RSS while embedding 10k images
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inputs import make_captions, make_images  # noqa: E402
from make_models import DEFAULT_OUT, make_models  # noqa: E402

CACHE = HERE.parent / ".cache" / "bench"
GFLOP_PER_IMAGE = 8.8  # ViT-B/32 vision tower, one 224x224 image
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")

#: same-run ratio -> the least it must be (issue 5's table; transformers: both modes >= 2x)
TARGETS = {
    "images/crossmodal-exact vs fastembed": 1.0,
    "images/crossmodal-exact vs ort-raw": 0.95,
    "texts/crossmodal-exact vs fastembed": 1.3,
    "images/crossmodal-fast vs fastembed": 2.5,
    "texts/crossmodal-fast vs fastembed": 2.5,
    "images/crossmodal-exact vs transformers": 2.0,
    "texts/crossmodal-exact vs transformers": 2.0,
    "images/crossmodal-fast vs transformers": 2.0,
    "texts/crossmodal-fast vs transformers": 2.0,
    "images/crossmodal-exact vs its model-only rate": 0.9,
    "images/crossmodal-fast vs its model-only rate": 0.9,
}

IMAGE_CONTENDERS = ("crossmodal-exact", "crossmodal-fast", "crossmodal-exact-model", "crossmodal-fast-model",
                    "fastembed", "transformers", "ort-raw")
TEXT_CONTENDERS = ("crossmodal-exact", "crossmodal-fast", "fastembed", "transformers", "ort-raw", "ort-raw-77")


# --------------------------------------------------------------------------- measuring


def _cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Timer:
    """Wall time, this process's CPU time (children included) and the machine's other load."""

    def __enter__(self) -> Timer:
        self.busy0, self.total0 = _cpu_busy()
        self.cpu0 = _own_cpu()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = _own_cpu() - self.cpu0
        busy, total = _cpu_busy()
        tick = os.sysconf("SC_CLK_TCK")
        ncpu = os.cpu_count() or 1
        machine_busy_s = (busy - self.busy0) / tick
        self.other = max(0.0, (machine_busy_s - self.cpu) / max(1e-9, self.wall * ncpu))


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(work: Any, n: int, passes: int, **extra: Any) -> dict[str, Any]:
    """Run ``work()`` (which embeds ``n`` inputs) ``passes`` times; the fastest pass is the result."""
    runs = []
    for _ in range(max(1, passes)):
        with Timer() as t:
            work()
        runs.append(t)
    best = min(runs, key=lambda t: t.wall)
    return {"n": n, "seconds": best.wall, "rate": n / best.wall, "cpu_s": best.cpu, "other": best.other,
            "pass_rates": [n / t.wall for t in runs], **extra}


# --------------------------------------------------------------------------- contenders (run in a child process)
# Each returns (work, n, extra): work() embeds all n inputs once, end to end, and is what gets timed.


def _model_dirs(models: Path) -> dict[str, Path]:
    return {"transformers": models / "clip-vit-base-patch32", "onnx": models / "clip-vit-base-patch32-onnx",
            "fastembed_vision": models / "fastembed" / "clip-ViT-B-32-vision",
            "fastembed_text": models / "fastembed" / "clip-ViT-B-32-text"}


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


Work = tuple[Any, int, dict[str, Any]]


def run_crossmodal(kind: str, mode: str, paths: list[Path], captions: list[str], dirs: dict[str, Path],
                   threads: int, model_only: bool = False) -> Work:
    import crossmodal

    model = crossmodal.load_model(dirs["onnx"], mode=mode, threads=threads, cache_dir=CACHE / "crossmodal-cache")
    if kind == "texts":
        model.embed_texts(captions[:64])

        def texts() -> None:
            assert model.embed_texts(captions).shape == (len(captions), model.dim)

        return texts, len(captions), {}
    size = model.batch_size
    if model_only:
        pixels = np.stack([model.preprocess_image(p) for p in paths])
        batches = [np.ascontiguousarray(pixels[i : i + size]) for i in range(0, len(pixels), size)]
        model.encoder.encode_images(batches[0])
        return (lambda: [_normalize(model.encoder.encode_images(b)) for b in batches]), len(paths), {"batch": size}
    model.embed_images(paths[:8])

    def images() -> None:
        assert model.embed_images(paths).shape == (len(paths), model.dim)

    return images, len(paths), {"batch": size}


def run_fastembed(kind: str, paths: list[Path], captions: list[str], dirs: dict[str, Path], threads: int) -> Work:
    if kind == "texts":
        from fastembed import TextEmbedding

        text_model = TextEmbedding("Qdrant/clip-ViT-B-32-text", specific_model_path=str(dirs["fastembed_text"]),
                                   threads=threads, cache_dir=str(CACHE / "fastembed-cache"))
        list(text_model.embed(captions[:64]))
        # fastembed leaves CLIP text vectors unnormalized; normalizing is part of the job
        return (lambda: _normalize(np.stack(list(text_model.embed(captions))))), len(captions), {}
    from fastembed import ImageEmbedding

    model = ImageEmbedding("Qdrant/clip-ViT-B-32-vision", specific_model_path=str(dirs["fastembed_vision"]),
                           threads=threads, cache_dir=str(CACHE / "fastembed-cache"))
    files = [str(p) for p in paths]
    list(model.embed(files[:8]))
    return (lambda: np.stack(list(model.embed(files)))), len(paths), {}


def run_transformers(kind: str, paths: list[Path], captions: list[str], dirs: dict[str, Path], threads: int) -> Work:
    import torch
    from PIL import Image
    from transformers import AutoProcessor, CLIPModel

    torch.set_num_threads(threads)
    model = CLIPModel.from_pretrained(str(dirs["transformers"])).eval()
    processor = AutoProcessor.from_pretrained(str(dirs["transformers"]))

    def features(out: Any) -> np.ndarray:
        return _normalize((out if hasattr(out, "shape") else out.pooler_output).numpy())

    @torch.inference_mode()
    def texts(batch: list[str]) -> np.ndarray:
        return features(model.get_text_features(**processor(text=batch, padding=True, return_tensors="pt")))

    @torch.inference_mode()
    def images(batch: list[Path]) -> np.ndarray:
        pics = []
        for p in batch:
            with Image.open(p) as img:
                pics.append(img.convert("RGB"))
        return features(model.get_image_features(**processor(images=pics, return_tensors="pt")))

    if kind == "texts":
        size = 256
        texts(captions[:64])
        return (lambda: [texts(captions[i : i + size]) for i in range(0, len(captions), size)]), len(captions), {"batch": size}
    size = 32
    images(paths[:8])
    return (lambda: [images(paths[i : i + size]) for i in range(0, len(paths), size)]), len(paths), {"batch": size}


def _raw_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()  # what fastembed sets: all graph optimizations, the thread count
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_raw(kind: str, paths: list[Path], captions: list[str], dirs: dict[str, Path], threads: int,
            pad77: bool = False) -> Work:
    if kind == "texts":
        from tokenizers import Tokenizer

        session = _raw_session(dirs["onnx"] / "onnx" / "text_model.onnx", threads)
        tok = Tokenizer.from_file(str(dirs["onnx"] / "tokenizer.json"))
        tok.enable_truncation(77)
        pad_id = tok.token_to_id("<|endoftext|>")
        tok.enable_padding(pad_id=pad_id, pad_token="<|endoftext|>", length=77 if pad77 else None)
        texts = captions[:256] if pad77 else captions
        size = 64 if pad77 else 256

        def run(batch: list[str]) -> np.ndarray:
            enc = tok.encode_batch(batch)
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            return _normalize(session.run(None, {"input_ids": ids, "attention_mask": mask})[0])

        run(texts[:16])
        return (lambda: [run(texts[i : i + size]) for i in range(0, len(texts), size)]), len(texts), {"batch": size}
    from crossmodal.families import FAMILIES
    from crossmodal.preprocessing.images import ImageTransform, load_image

    spec = FAMILIES.read_spec(FAMILIES.detect(dirs["onnx"]), "bench")
    transform = ImageTransform(spec.image)
    pixels = np.stack([transform(load_image(p)) for p in paths])
    session = _raw_session(dirs["onnx"] / "onnx" / "vision_model.onnx", threads)
    size = 8
    batches = [np.ascontiguousarray(pixels[i : i + size]) for i in range(0, len(pixels), size)]
    session.run(None, {"pixel_values": batches[0]})
    return (lambda: [_normalize(session.run(None, {"pixel_values": b})[0]) for b in batches]), len(paths), {"batch": size}


def run_matmul(threads: int, seconds: float = 3.0) -> dict[str, Any]:
    """numpy float32 matmul GFLOP/s (the BLAS numpy ships with) on ``threads`` threads."""
    n = 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return {"gflops": best}


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    name, kind = args.worker, args.kind
    if name == "matmul":
        return run_matmul(args.threads)
    dirs = _model_dirs(args.models)
    paths = make_images(CACHE / "images")[: args.images]
    captions = make_captions(args.texts)
    if name.startswith("crossmodal-"):
        mode = "fast" if "-fast" in name else "exact"
        work = run_crossmodal(kind, mode, paths, captions, dirs, args.threads, model_only=name.endswith("-model"))
    elif name == "fastembed":
        work = run_fastembed(kind, paths, captions, dirs, args.threads)
    elif name == "transformers":
        work = run_transformers(kind, paths, captions, dirs, args.threads)
    elif name in ("ort-raw", "ort-raw-77"):
        work = run_raw(kind, paths, captions, dirs, args.threads, pad77=name == "ort-raw-77")
    else:
        raise SystemExit(f"unknown contender {name}")
    fn, n, extra = work
    return timed(fn, n, args.passes, **extra)


# --------------------------------------------------------------------------- peak RSS


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total = 0
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    stack = [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except OSError:
            continue
        stack += children.get(p, [])
    return total


def run_rss(args: argparse.Namespace) -> dict[str, Any]:
    """Embed ``--rss`` images (the benchmark photos, cycled, as a generator) and sample the process tree's RSS."""
    import itertools

    import crossmodal

    mode = "fast" if "fast" in args.worker else "exact"
    paths = make_images(CACHE / "images")
    model = crossmodal.load_model(_model_dirs(args.models)["onnx"], mode=mode, threads=args.threads,
                                  cache_dir=CACHE / "crossmodal-cache")
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(os.getpid()))
            time.sleep(0.05)

    base = _tree_rss(os.getpid())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    n = 0
    with Timer() as t:
        for batch in model.iter_images(itertools.islice(itertools.cycle(paths), args.rss)):
            n += len(batch.vectors)
    done.set()
    sampler.join()
    return {"n": n, "seconds": t.wall, "rate": n / t.wall, "other": t.other, "peak_rss": peak, "loaded_rss": base}


# --------------------------------------------------------------------------- orchestration


def _child(name: str, kind: str, args: argparse.Namespace, threads: int) -> dict[str, Any]:
    env = dict(os.environ, **{k: str(threads) for k in THREAD_ENV}, TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, __file__, "--worker", name, "--kind", kind, "--threads", str(threads),
           "--images", str(args.images), "--texts", str(args.texts), "--models", str(args.models),
           "--passes", str(args.passes)]
    if args.rss:
        cmd += ["--rss", str(args.rss)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{name} ({kind}) failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(rounds: list[dict[str, dict[str, Any]]], gflops: float | None) -> dict[str, Any]:
    """Median rates, and the median over rounds of each same-round ratio."""
    out: dict[str, Any] = {"rates": {}, "ratios": {}}
    keys = sorted({k for r in rounds for k in r})
    for key in keys:
        rates = [r[key]["rate"] for r in rounds if key in r]
        others = [r[key]["other"] for r in rounds if key in r]
        out["rates"][key] = {"median": _median(rates), "best": max(rates), "rounds": rates,
                             "other_cpu": _median(others)}

    def ratio(a: str, b: str) -> float | None:
        return _median([r[a]["rate"] / r[b]["rate"] for r in rounds if a in r and b in r])

    for kind in ("images", "texts"):
        for mode in ("exact", "fast"):
            me = f"{kind}/crossmodal-{mode}"
            for peer in ("fastembed", "transformers", "ort-raw"):
                value = ratio(me, f"{kind}/{peer}")
                if value is not None:
                    out["ratios"][f"{me} vs {peer}"] = value
            value = ratio(me, f"{kind}/crossmodal-{mode}-model")
            if value is not None:
                out["ratios"][f"{me} vs its model-only rate"] = value
    if gflops:
        out["matmul_gflops"] = gflops
        for key in keys:
            if key.startswith("images/"):
                out["rates"][key]["compute_bound_fraction"] = out["rates"][key]["median"] * GFLOP_PER_IMAGE / gflops
    return out


def print_summary(summary: dict[str, Any], threads: int) -> None:
    print(f"\nthroughput on {threads} threads (median over rounds; best; other processes' share of the CPUs)")
    for key, r in summary["rates"].items():
        unit = "images/s" if key.startswith("images/") else "texts/s"
        frac = r.get("compute_bound_fraction")
        extra = f"  {frac:.0%} of the matmul bound" if frac is not None else ""
        print(f"  {key:34s} {_fmt(r['median']):>7} {unit}  (best {_fmt(r['best'])}, other CPU {r['other_cpu']:.0%}){extra}")
    if "matmul_gflops" in summary:
        print(f"  numpy float32 matmul: {summary['matmul_gflops']:.0f} GFLOP/s "
              f"(= {summary['matmul_gflops'] / GFLOP_PER_IMAGE:.1f} ViT-B/32 images/s at 100%)")
    print("\nratios (same round, median over rounds)")
    for key, value in summary["ratios"].items():
        print(f"  {key:60s} {value:5.2f}x")
    print("\ntargets (issue 5)")
    for key, bound in TARGETS.items():
        value = summary["ratios"].get(key)
        verdict = "-" if value is None else ("PASS" if value >= bound else "FAIL")
        print(f"  {key:60s} >= {bound:4.2f}x  {_fmt(value, '.2f'):>5}  {verdict}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=DEFAULT_OUT, help="bench/make_models.py output")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=1, help="timed passes per contender and round; the fastest counts")
    parser.add_argument("--only", default="", help="comma-separated contenders (default: all)")
    parser.add_argument("--kinds", default="images,texts")
    parser.add_argument("--scaling", action="store_true", help="also run crossmodal and ort-raw on 1 thread")
    parser.add_argument("--rss", type=int, default=0, help="measure peak RSS while embedding this many images")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="images", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = run_rss(args) if args.rss else run_worker(args)
        print(json.dumps(result))
        return

    make_models(args.models)
    make_images(CACHE / "images")
    only = set(filter(None, args.only.split(",")))
    report: dict[str, Any] = {"threads": args.threads, "images": args.images, "texts": args.texts,
                              "machine": _machine()}
    print(f"machine: {report['machine']}")
    if args.rss:
        for mode in ("exact", "fast"):
            r = _child(f"rss-{mode}", "images", args, args.threads)
            report[f"rss-{mode}"] = r
            print(f"peak RSS embedding {r['n']} images ({mode}): {r['peak_rss'] / 2**20:.0f} MiB for the process tree "
                  f"(after loading: {r['loaded_rss'] / 2**20:.0f} MiB), {r['rate']:.1f} images/s")
        _write(args.json, report)
        return

    gflops = _child("matmul", "-", args, args.threads)["gflops"]
    rounds: list[dict[str, dict[str, Any]]] = []
    for i in range(args.rounds):
        results: dict[str, dict[str, Any]] = {}
        for kind in args.kinds.split(","):
            for name in IMAGE_CONTENDERS if kind == "images" else TEXT_CONTENDERS:
                if only and name not in only:
                    continue
                results[f"{kind}/{name}"] = r = _child(name, kind, args, args.threads)
                print(f"round {i + 1}: {kind}/{name}: {r['rate']:.1f}/s (other CPU {r['other']:.0%})", flush=True)
        rounds.append(results)
    summary = summarize(rounds, gflops)
    report.update(summary=summary, rounds=rounds)
    print_summary(summary, args.threads)

    if args.scaling:
        report["scaling"] = scaling = {}
        for threads in (1, args.threads):
            g = _child("matmul", "-", args, threads)["gflops"]
            row: dict[str, Any] = {"matmul_gflops": g}
            for kind in args.kinds.split(","):
                for name in ("crossmodal-exact", "crossmodal-fast", "ort-raw"):
                    row[f"{kind}/{name}"] = _child(name, kind, args, threads)["rate"]
            scaling[threads] = row
        print(f"\nscaling: 1 -> {args.threads} threads")
        for key in scaling[1]:
            one, many = scaling[1][key], scaling[args.threads][key]
            print(f"  {key:34s} {one:8.1f} -> {many:8.1f}  ({many / one:.2f}x)")
    _write(args.json, report)


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return f"{model}, {os.cpu_count()} CPUs, onnxruntime {onnxruntime.__version__}, numpy {np.__version__}"


def _write(path: Path | None, report: dict[str, Any]) -> None:
    path = path or CACHE / "results" / f"embed_throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
