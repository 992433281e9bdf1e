"""Distributed ingest on a local Ray cluster of 2 CPUs with the tiny CLIP, writing to the test PostgreSQL.

The properties: the items and vectors equal what single-machine ingest
makes; a rerun embeds nothing; a worker killed mid-job still ends with every
item present exactly once; the CLI runs it and refuses the embedded store.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from click.testing import CliRunner
from PIL import Image

import crossmodal
from crossmodal.cli.main import cli
from crossmodal.distributed import RayOptions, ray_ingest
from crossmodal.ingest import IngestOptions, ingest
from crossmodal.loader import LoadOptions

from ..stores.servers import pg_store_uri


def fields(store: crossmodal.Store, name: str) -> dict[str, tuple]:
    return {r.id: (r.modality, r.reference, r.text, r.content_hash, r.source, r.stamp, dict(r.metadata))
            for r in store.collection(name).items()}


def vectors(store: crossmodal.Store, name: str) -> dict[str, np.ndarray]:
    return {r.id: r.vector for r in store.collection(name).items(vectors=True)}


def test_results_equal_the_single_machine_path_and_a_rerun_embeds_nothing(
        ray_cluster, tiny_model, tiny_clip_onnx_dir: Path, model_cache: Path, images_dir: Path, tmp_path: Path) -> None:
    folders = [images_dir / "formats", images_dir / "captioned" / "images"]
    captions = images_dir / "captioned" / "captions.tsv"
    single = crossmodal.open_store("memory://")
    single_report = ingest(single.collection("c", model=tiny_model), folders, captions=captions, workers=0)
    uri = pg_store_uri(tmp_path)
    report = ray_ingest(uri, "c", folders, model=str(tiny_clip_onnx_dir), load=LoadOptions(cache_dir=model_cache),
                        options=IngestOptions(captions=captions, batch_size=8),
                        ray=RayOptions(write_batch=16, progress=False))
    assert (report.added, report.updated, len(report.failed)) == (single_report.added, 0, len(single_report.failed))
    with crossmodal.open_store(uri) as pg:
        assert fields(pg, "c") == fields(single, "c")  # ids, references, content hashes, stamps, metadata, pairs
        got, want = vectors(pg, "c"), vectors(single, "c")
        assert max(float(np.abs(got[i] - want[i]).max()) for i in want) <= 1e-6
        assert {r.modality for r in pg.collection("c").items()} == {"image", "text", "pair"}
    again = ray_ingest(uri, "c", folders, model=str(tiny_clip_onnx_dir), load=LoadOptions(cache_dir=model_cache),
                       options=IngestOptions(captions=captions), ray=RayOptions(progress=False))
    assert (again.added, again.updated, again.unchanged) == (0, 0, single_report.added)


def test_a_re_index_without_metadata_or_captions_keeps_what_the_first_run_stored(
        ray_cluster, tiny_clip_onnx_dir: Path, model_cache: Path, images_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("cat.jpg", "bee.jpg"):
        (folder / name).write_bytes((images_dir / "formats" / name).read_bytes())
    (tmp_path / "meta.tsv").write_text("file\talbum\ncat.jpg\tpets\nbee.jpg\tgarden\n")
    (tmp_path / "caps.tsv").write_text("file\tcaption\nbee.jpg\ta bee on a flower\n")
    uri = pg_store_uri(tmp_path)
    first = ray_ingest(uri, "c", [folder], model=str(tiny_clip_onnx_dir), load=LoadOptions(cache_dir=model_cache),
                       options=IngestOptions(metadata=tmp_path / "meta.tsv", captions=tmp_path / "caps.tsv"),
                       ray=RayOptions(progress=False))
    assert (first.added, len(first.failed)) == (4, 0)
    with crossmodal.open_store(uri) as pg:
        before = fields(pg, "c")
    again = ray_ingest(uri, "c", [folder], model=str(tiny_clip_onnx_dir), load=LoadOptions(cache_dir=model_cache),
                       ray=RayOptions(progress=False))
    assert (again.added, again.updated, again.unchanged) == (0, 0, 4)
    with crossmodal.open_store(uri) as pg:
        assert fields(pg, "c") == before  # the metadata, the caption and the pair, as the first run stored them
        assert pg.collection("c").count(where={"album": "pets"}) == 1


def make_images(folder: Path, n: int) -> None:
    folder.mkdir()
    rng = random.Random(0)
    for i in range(n):
        pixels = np.array([[[rng.randrange(256) for _ in range(3)] for _ in range(4)] for _ in range(4)], dtype=np.uint8)
        Image.fromarray(pixels).resize((48, 48), Image.NEAREST).save(folder / f"img{i:03d}.png")


def embedder_processes() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if "MapBatches(Embedder)" in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


def test_killing_a_model_worker_mid_job_still_stores_every_item_once(
        ray_cluster, tiny_model, tiny_clip_onnx_dir: Path, model_cache: Path, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    make_images(folder, 160)
    uri = pg_store_uri(tmp_path)
    killed: dict[str, int] = {}

    def kill_one_model_worker_mid_job() -> None:
        with crossmodal.open_store(uri) as st:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "pid" not in killed:
                names = [i.name for i in st.collections()]
                stored = st.collection("c").count() if "c" in names else 0
                workers = embedder_processes()
                if stored >= 16 and workers:  # some batches are written, most are not
                    killed.update(pid=workers[0].pid, stored=stored)
                    os.kill(workers[0].pid, signal.SIGKILL)
                time.sleep(0.05)

    watcher = threading.Thread(target=kill_one_model_worker_mid_job)
    watcher.start()
    report = ray_ingest(uri, "c", [folder], model=str(tiny_clip_onnx_dir), load=LoadOptions(cache_dir=model_cache),
                        options=IngestOptions(batch_size=4), ray=RayOptions(write_batch=8, progress=False))
    watcher.join()
    assert "pid" in killed and killed["stored"] < 160, killed  # the kill happened mid-job
    assert report.added == 160 and not report.failed
    with crossmodal.open_store(uri) as st:
        col = st.collection("c")
        assert col.count() == 160
        schema = st.backend.schema
        with st.backend.pool.connection() as conn:  # exactly once: no two rows for one id, no stray ids
            rows = conn.execute(f'SELECT count(*), count(DISTINCT id) FROM "{schema}".items_{col.backend.cid}')
            assert rows.fetchone() == (160, 160)
        single = crossmodal.open_store("memory://").collection("c", model=tiny_model)
        ingest(single, [folder], workers=0)
        want = {r.id: r.vector for r in single.items(vectors=True)}
        got = {r.id: r.vector for r in col.items(vectors=True)}
        assert set(got) == set(want)
        assert max(float(np.abs(got[i] - want[i]).max()) for i in want) <= 1e-6


def test_the_index_command_runs_on_ray_and_refuses_the_embedded_store(
        ray_cluster, tiny_clip_onnx_dir: Path, model_cache: Path, images_dir: Path, tmp_path: Path) -> None:
    env = {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(tiny_clip_onnx_dir)}
    manifest = tmp_path / "inputs.csv"
    manifest.write_text("url,text,album\n"
                        f"file://{images_dir / 'formats' / 'cat.jpg'},,2024\n"
                        f"file://{images_dir / 'formats' / 'bee.jpg'},,2023\n"
                        ",a cat sleeping on a chair,notes\n", encoding="utf-8")
    uri = pg_store_uri(tmp_path)
    result = CliRunner().invoke(cli, ["index", str(manifest), "--store", uri, "--collection", "m", "--json",
                                      "--ray"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["added"], report["failed"], report["ray"]) == (3, 0, "local")
    with crossmodal.open_store(uri) as st:
        col = st.collection("m")
        assert col.count(where={"album": "2024"}) == 1 and col.count(modality="text") == 1
    refused = CliRunner().invoke(cli, ["index", str(manifest), "--store", str(tmp_path / "embedded"), "--ray"],
                                 env=env)
    assert refused.exit_code == 2 and "server store" in refused.output
