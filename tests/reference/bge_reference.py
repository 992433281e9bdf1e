"""Run BAAI's reference on given inputs in a subprocess and get numpy outputs back.

Tasks are plain dicts built by :func:`visualized_task`, :func:`m3_task` and
:func:`transform_task`. :func:`start` launches one subprocess
(:mod:`tests.reference.bge_runner`) for a list of tasks and returns at once, so
several references (and the tests' own work) run side by side;
:meth:`ReferenceRun.results` waits, with a timeout (the batch-shrinking retry
loop in ``BGEM3FlagModel.encode`` can spin forever on an error that is not
out-of-memory). :func:`run` does both. Anything that keeps the reference from
running raises :class:`~tests.reference.bge_env.ReferenceUnavailable` saying why.

A call is a dict with a ``name`` and an ``op``; see the runner for the ops:

* visualized: ``text`` (``texts``, ``batched``), ``image``, ``pair`` (one image
  per call, as ``encode`` takes them), ``pair_batch``, ``image_batch``
  (``encode_mm`` / ``encode_image``), ``tokenize``, ``diagnostics``;
* m3: ``encode`` (``texts``, ``max_length``, ``batch_size``, ``truncate_dim``,
  ``dense``/``sparse``/``colbert``), ``score`` (``pairs``, ``weights``,
  ``batch_size``, ``max_length``), ``colbert_score`` (``pair``), ``tokenize``;
* transform: the eval image transform's tensors for image files (``image.{i}``).

A call that raised inside the reference is recorded in ``meta[name]`` as
``{"error", "message"}`` (see :meth:`ReferenceResult.error`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .bge_env import ReferenceEnv, ReferenceUnavailable, prepare

RUNNER = Path(__file__).with_name("bge_runner.py")


@dataclass
class ReferenceResult:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    seconds: float  # the whole subprocess: imports, model construction and every task in it

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise KeyError(f"the reference produced no {name!r}: {self.meta.get(name) or self.meta.get('fatal')}")
        return self.arrays[name]

    def error(self, name: str) -> dict[str, str] | None:
        entry = self.meta.get(name)
        return entry if isinstance(entry, dict) and "error" in entry else None


def visualized_task(model_dir: Path, calls: list[dict[str, Any]], *, variant: str = "base-en") -> dict[str, Any]:
    """``Visualized_BGE`` (eval mode) on ``model_dir`` in the released layout."""
    weights = sorted(Path(model_dir).glob("Visualized_*.pth"))
    if len(weights) != 1:
        raise ValueError(f"{model_dir} must hold one Visualized_*.pth")
    return {"task": "visualized", "model_dir": str(model_dir), "weights": str(weights[0]), "variant": variant,
            "calls": calls}


def m3_task(model_dir: Path, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """``BGEM3FlagModel(model_dir, use_fp16=False, devices="cpu")``."""
    return {"task": "m3", "model_dir": str(model_dir), "calls": calls}


def transform_task(images: list[Path], *, size: int = 224) -> dict[str, Any]:
    """EVA-CLIP's eval transform applied to ``Image.open(path)`` of each file."""
    return {"task": "transform", "images": [str(p) for p in images], "size": size}


@dataclass
class ReferenceRun:
    proc: subprocess.Popen
    tmp: Path
    outs: list[Path]
    timeout: float
    started: float = field(default_factory=time.perf_counter)
    _results: list[ReferenceResult] | None = None

    def results(self) -> list[ReferenceResult]:
        if self._results is not None:
            return self._results
        try:
            self.proc.wait(timeout=max(1.0, self.timeout - (time.perf_counter() - self.started)))
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise ReferenceUnavailable(f"the reference did not finish within {self.timeout:.0f} s") from exc
        seconds = time.perf_counter() - self.started
        try:
            stderr = (self.tmp / "stderr.txt").read_text(errors="replace")
            results = []
            for out in self.outs:
                if not out.with_suffix(".json").is_file():
                    raise ReferenceUnavailable(f"the reference failed (exit {self.proc.returncode}): {stderr[-3000:]}")
                meta = json.loads(out.with_suffix(".json").read_text())
                if "fatal" in meta:
                    raise ReferenceUnavailable(f"the reference failed: {meta['fatal']}")
                with np.load(out.with_suffix(".npz")) as data:
                    results.append(ReferenceResult({k: data[k] for k in data.files}, meta, seconds))
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self._results = results
        return results


def start(tasks: list[dict[str, Any]], *, env: ReferenceEnv | None = None, timeout: float = 900,
          threads: int = 1) -> ReferenceRun:
    """Launch one reference process for ``tasks`` (all visual ones, or one M3 task) on ``threads`` CPU threads."""
    env = env or prepare()
    tmp = Path(tempfile.mkdtemp(prefix="bge-reference-"))
    outs = [tmp / f"out{i}" for i in range(len(tasks))]
    request = {"env": {"common": str(env.common), "visual": str(env.visual), "m3": str(env.m3)},
               "tasks": [{**task, "out": str(out)} for task, out in zip(tasks, outs)]}
    (tmp / "request.json").write_text(json.dumps(request))
    # One thread each: the visual and M3 references run side by side, next to the tests' own work.
    child_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                 "PYTHONWARNINGS": "ignore", "PYTHONPATH": "", "OMP_NUM_THREADS": str(threads),
                 "MKL_NUM_THREADS": str(threads)}
    with open(tmp / "stderr.txt", "wb") as stderr:  # a file, not a pipe: a full pipe would stall the child
        proc = subprocess.Popen([sys.executable, str(RUNNER), str(tmp / "request.json")], env=child_env, cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    return ReferenceRun(proc, tmp, outs, timeout)


def run(tasks: list[dict[str, Any]], **kwargs: Any) -> list[ReferenceResult]:
    return start(tasks, **kwargs).results()


def sparse_of(result: ReferenceResult, name: str, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(ascending ids, weights) of text ``i`` of the ``encode`` call ``name``."""
    return result[f"{name}.sparse_ids.{i}"], result[f"{name}.sparse_values.{i}"]
