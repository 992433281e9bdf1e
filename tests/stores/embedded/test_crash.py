"""Crash safety: an ingest killed with SIGKILL at random points never leaves the store inconsistent.

After every kill the store opens, ``store check`` is clean, every committed
item is found by its own vector and holds exactly the vector the model gives
its file and by a keyword search for its file name, every text item holds the
sparse vector and multi-vector of its text and is found by a sparse search for
it, nothing committed earlier is lost, and a final rerun completes the
collection without duplicates.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmodal.identity import hash_file
from crossmodal.store import open_store
from crossmodal.testing.fake_tokens import fake_token_model, word_sparse, word_vectors

from .ingest_worker import STORE_OPTIONS

WORKER = Path(__file__).with_name("ingest_worker.py")
ROUNDS = 20


def write_image(path: Path, rng: random.Random) -> None:
    """A small picture with random colour blocks: distinct files have distinct fake-model vectors."""
    pixels = np.array([[[rng.randrange(256) for _ in range(3)] for _ in range(4)] for _ in range(4)], dtype=np.uint8)
    Image.fromarray(pixels).resize((16, 16), Image.NEAREST).save(path)


def grow(folder: Path, rng: random.Random, round_: int, new: int, modify: int) -> None:
    for i in range(new):
        write_image(folder / f"r{round_:02d}-{i:03d}.png", rng)
    for n in range(3):
        words = " ".join(rng.choice(["cats", "dogs", "sea", "red", "old", "tree"]) for _ in range(3))
        (folder / f"note-{round_:02d}-{n}.txt").write_text(f"note number {round_} {n} about {words}")
    for path in rng.sample(sorted(folder.glob("*.png")), modify):
        write_image(path, rng)


def run_worker(store: Path, folder: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[3] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(WORKER), str(store), str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def verify(store_path: Path, folder: Path, model, seen: set[str]) -> set[str]:
    st = open_store(store_path, **STORE_OPTIONS)
    try:
        report = st.check()
        assert report.clean, report.to_dict()
        col = st.collection("crash", model=model)
        items = list(col.items(vectors=True))
        ids = {r.id for r in items}
        assert len(ids) == len(items) == col.count()
        assert len({(r.modality, r.reference) for r in items}) == len(items), "duplicate items"
        assert seen <= ids, f"committed items lost: {sorted(seen - ids)[:5]}"
        images = [r for r in items if r.modality == "image" and hash_file(folder / r.reference) == r.content_hash]
        if images:
            expected = model.embed_images([folder / r.reference for r in images])
            np.testing.assert_allclose(np.stack([r.vector for r in images]), expected, atol=1e-6)
        for r in items:
            top = col.search(vector=r.vector, top_k=1)[0]
            assert top.id == r.id and top.score == pytest.approx(1.0, abs=1e-5)
        for r in items[::max(1, len(items) // 25)]:  # through the filter key sets (caught up or rebuilt)
            assert col.search(vector=r.vector, top_k=1, where={"absent": {"$ne": 1}})[0].id == r.id
            assert not col.search(vector=r.vector, top_k=1, where={"absent": 1})
            # the keyword index was written in the item's transaction: its file name finds it too
            assert r.id in {h.id for h in col.search(r.reference, using="keyword", top_k=len(items))}
        texts = [r for r in items if r.modality == "text"]
        for r in texts:  # the sparse postings and the multi-vector were written in the item's transaction too
            assert r.sparse == pytest.approx(word_sparse(r.text))
            np.testing.assert_array_equal(r.multivector, word_vectors(r.text, 8).astype(np.float16))
            assert r.id in {h.id for h in col.search(r.text, using="sparse", top_k=len(items))}
        return ids
    finally:
        st.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_at_random_points_never_breaks_the_store(tmp_path: Path) -> None:
    rng = random.Random(1234)
    folder, store = tmp_path / "files", tmp_path / "store"
    folder.mkdir()
    model = fake_token_model(dim=16)
    seen: set[str] = set()
    killed = 0
    for round_ in range(ROUNDS):
        grow(folder, rng, round_, new=30 if round_ else 80, modify=0 if round_ == 0 else 3)
        proc = run_worker(store, folder)
        target = None
        for line in proc.stdout:  # type: ignore[union-attr]
            if not line.startswith("progress"):
                break
            done, total = map(int, line.split()[1:])
            target = target or rng.randint(1, total)  # kill after a random batch, a random moment later
            if done >= target:
                break
        time.sleep(rng.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            killed += 1
        else:
            assert proc.returncode == 0, err
        seen = verify(store, folder, model, seen)
    assert killed >= ROUNDS * 3 // 4, f"only {killed} of {ROUNDS} runs were killed mid-way"

    proc = run_worker(store, folder)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    files = sorted(p.name for p in folder.iterdir())
    ids = verify(store, folder, model, seen)
    assert len(ids) == len(files)
    st = open_store(store, **STORE_OPTIONS)
    col = st.collection("crash", model=model)
    assert sorted(r.reference for r in col.items()) == files
    images = list(col.items(modality="image", vectors=True))
    np.testing.assert_allclose(np.stack([r.vector for r in images]),
                               model.embed_images([folder / r.reference for r in images]), atol=1e-6)
    st.close()
