"""The tiny CLIP's training: the same bytes from every run on a machine, whatever the load or thread settings."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crossmodal.testing.train import TrainOptions, train_tiny_clip

torch = pytest.importorskip("torch")

SHORT = {"steps": 12, "per_caption": 2, "pool_per_caption": 4}  # the bytes check needs no converged model
TRAIN = f"""
import hashlib, sys
from pathlib import Path
from crossmodal.testing.train import TrainOptions, train_tiny_clip
out = train_tiny_clip(Path(sys.argv[1]), bpe=Path(sys.argv[2]).read_bytes(), options=TrainOptions(**{SHORT!r}))
print(hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest())
"""
BURN = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end:\n    pass\n"


def _train_in_a_process(out: Path, bpe: Path, threads: int) -> str:
    # A different default thread count for each process: training must not depend on it.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", TRAIN, str(out), str(bpe)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_two_trainings_give_the_same_bytes_even_on_a_busy_machine(tmp_path: Path, clip_bpe: bytes) -> None:
    bpe = tmp_path / "bpe.txt.gz"
    bpe.write_bytes(clip_bpe)
    quiet = _train_in_a_process(tmp_path / "quiet", bpe, threads=1)
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(min(8, os.cpu_count() or 2))]
    try:
        busy = _train_in_a_process(tmp_path / "busy", bpe, threads=3)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert busy == quiet


def test_training_leaves_torch_as_it_found_it(tmp_path: Path, clip_bpe: bytes) -> None:
    threads = torch.get_num_threads()
    rng = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(max(2, threads))
    try:
        out = train_tiny_clip(tmp_path / "m", bpe=clip_bpe, options=TrainOptions(**SHORT))
        assert torch.get_num_threads() == max(2, threads)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    again = train_tiny_clip(tmp_path / "again", bpe=clip_bpe, options=TrainOptions(**SHORT))
    assert _sha(out) == _sha(again)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        TrainOptions(threads=0)
    with pytest.raises(ValueError, match="steps"):
        TrainOptions(steps=0)


def _sha(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
