"""Planning a distributed ingest (no Ray needed): the same items as single-machine ingest, manifests, resuming."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import crossmodal
from crossmodal.distributed import check_server_store
from crossmodal.distributed.plan import plan_inputs
from crossmodal.distributed.ray_ingest import resources_for
from crossmodal.errors import ConfigError
from crossmodal.identity import make_id
from crossmodal.ingest import IngestOptions, ingest
from crossmodal.testing.fake import fake_model


@pytest.mark.parametrize("uri", ["/some/dir", "file:///some/dir", "memory://", "qdrant+local:///tmp/q"])
def test_only_server_stores_take_distributed_writes(uri: str) -> None:
    with pytest.raises(ConfigError, match="server store") as err:
        check_server_store(uri)
    assert "store copy" in str(err.value)  # and it says what to do instead


@pytest.mark.parametrize("uri", ["postgresql://db/app", "postgres://u@h/d", "qdrant://qdrant:6333"])
def test_server_stores_are_accepted(uri: str) -> None:
    check_server_store(uri)


def test_resources_put_one_model_actor_on_each_gpu_or_leave_half_the_cpus_to_decoding() -> None:
    gpu = resources_for({"CPU": 32, "GPU": 4})
    assert (gpu.actors, gpu.actor_gpus, gpu.device) == (4, 1.0, "cuda")
    laptop = resources_for({"CPU": 2})
    assert (laptop.actors, laptop.actor_cpus, laptop.actor_gpus, laptop.device) == (1, 1.0, 0.0, None)
    assert laptop.actor_cpus + laptop.prepare_cpus + laptop.writer_cpus <= 2  # nothing waits for a core forever
    big = resources_for({"CPU": 64})
    assert big.actors * big.actor_cpus <= 32


def test_folders_plan_the_items_single_machine_ingest_makes(images_dir: Path, tmp_path: Path) -> None:
    folders = [images_dir / "formats", images_dir / "captioned" / "images"]
    captions = images_dir / "captioned" / "captions.tsv"
    single = crossmodal.open_store("memory://").collection("c", model=fake_model(dim=8))
    report = ingest(single, folders, captions=captions, workers=0)
    planned_col = crossmodal.open_store("memory://").collection("c", model=fake_model(dim=8))
    planned_col.set_root(single.root)
    plan = plan_inputs(planned_col, folders, IngestOptions(captions=captions))
    want = {r.id: (r.modality, r.reference, r.text, r.source, r.stamp, dict(r.metadata)) for r in single.items()}
    got = {w.record.id: (w.record.modality, w.record.reference, w.record.text, w.record.source, w.record.stamp,
                         dict(w.record.metadata)) for w in plan.rows}
    assert got == want
    assert {w.record.modality for w in plan.rows} == {"image", "text", "pair"}
    assert plan.files == report.files and plan.failed == report.failed


def test_manifests_list_files_urls_texts_captions_and_metadata(images_dir: Path, tmp_path: Path) -> None:
    cat = images_dir / "formats" / "cat.jpg"
    (tmp_path / "pics").mkdir()
    local = tmp_path / "pics" / "bee.jpg"
    local.write_bytes((images_dir / "formats" / "bee.jpg").read_bytes())
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        "path,url,text,caption,id,album,year,score\n"
        "pics/bee.jpg,,,a bee on a flower,,2024,2021,0.5\n"
        f",file://{cat},,,cat-1,2023,,\n"
        ",https://example.com/dog.jpg,,,,,2019,1.5\n"
        ",,a note about cats,,,notes,,\n"
        ",,,,,,,\n", encoding="utf-8")
    col = crossmodal.open_store("memory://").collection("c", model=fake_model(dim=8))
    col.set_root(tmp_path)
    plan = plan_inputs(col, [manifest])
    rows = {(w.record.modality, w.record.reference): w for w in plan.rows}
    bee = rows[("image", "pics/bee.jpg")]
    assert bee.record.id == make_id("image", "pics/bee.jpg") and bee.location == str(local)
    assert dict(bee.record.metadata) == {"album": "2024", "year": 2021, "score": 0.5}  # typed by column
    assert bee.record.stamp and bee.record.source == "pics/bee.jpg"
    assert ("text", "a bee on a flower") in rows and ("pair", "pics/bee.jpg") in rows  # the caption's two items
    assert rows[("pair", "pics/bee.jpg")].caption_key == "a bee on a flower"
    assert rows[("image", str(cat))].record.id == "cat-1"
    dog = rows[("image", "https://example.com/dog.jpg")]
    assert dog.location == "https://example.com/dog.jpg" and dog.record.source == "" and dog.record.stamp == ""
    assert dict(rows[("text", "a note about cats")].record.metadata) == {"album": "notes"}
    assert [w for w, _ in plan.failed] == [f"{manifest}:6"]  # the empty row, named by its line


def test_parquet_manifests_too(images_dir: Path, tmp_path: Path) -> None:
    table = pa.table({"url": [f"file://{images_dir / 'formats' / 'cat.jpg'}"], "tags": [["a", "b"]],
                      "starred": [True]})
    pq.write_table(table, tmp_path / "m.parquet")
    col = crossmodal.open_store("memory://").collection("c", model=fake_model(dim=8))
    (row,) = plan_inputs(col, [tmp_path / "m.parquet"]).rows
    assert dict(row.record.metadata) == {"tags": ["a", "b"], "starred": True}


def test_a_manifest_without_a_location_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("name,album\nx,1\n")
    col = crossmodal.open_store("memory://").collection("c", model=fake_model(dim=8))
    with pytest.raises(ConfigError, match="'path'"):
        plan_inputs(col, [tmp_path / "m.csv"])


def test_stored_items_are_skipped_and_changed_files_planned_again(images_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("cat.jpg", "bee.jpg"):
        (folder / name).write_bytes((images_dir / "formats" / name).read_bytes())
    col = crossmodal.open_store("memory://").collection("c", model=fake_model(dim=8))
    col.set_root(folder)
    first = plan_inputs(col, [folder])
    assert len(first.rows) == 2 and first.unchanged == 0
    col.upsert([r.record.__class__(**{**r.record.__dict__, "vector": np.ones(8, dtype=np.float32),
                                      "content_hash": "sha256:x"}) for r in first.rows])
    again = plan_inputs(col, [folder])
    assert again.rows == [] and again.unchanged == 2
    os.utime(folder / "cat.jpg", ns=(1, 1))  # a new stamp: embedded again, as an update
    changed = plan_inputs(col, [folder])
    assert [(w.record.reference, w.existed) for w in changed.rows] == [("cat.jpg", True)]


def test_ray_before_a_folder_takes_the_folder_as_a_path_and_refuses_the_embedded_store(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from crossmodal.cli.main import cli

    (tmp_path / "photos").mkdir()
    result = CliRunner().invoke(cli, ["index", "--ray", str(tmp_path / "photos"), str(tmp_path / "photos"),
                                      "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and "server store" in result.output  # not "missing PATHS", not an address
    assert not (tmp_path / "store").exists()  # refused before anything was created


def test_a_re_index_without_captions_or_metadata_keeps_what_an_earlier_run_stored(
        images_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("cat.jpg", "bee.jpg"):
        (folder / name).write_bytes((images_dir / "formats" / name).read_bytes())
    (tmp_path / "meta.tsv").write_text("file\talbum\ncat.jpg\tpets\n")
    (tmp_path / "caps.tsv").write_text("file\tcaption\nbee.jpg\ta bee on a flower\n")
    col = crossmodal.open_store("memory://").collection("c", model=fake_model(dim=8))
    ingest(col, [folder], metadata=tmp_path / "meta.tsv", captions=tmp_path / "caps.tsv", workers=0)
    before = {r.id: (r.modality, r.reference, r.text, dict(r.metadata)) for r in col.items()}
    assert before[make_id("image", "cat.jpg")][3] == {"album": "pets"} and len(before) == 4

    plan = plan_inputs(col, [folder])  # no --metadata, no --captions this time
    assert plan.rows == [] and plan.unchanged == 4  # nothing to embed or rewrite: the metadata and captions stay
    (folder / "cat.jpg").write_bytes((images_dir / "formats" / "bee.jpg").read_bytes())  # new content
    changed = plan_inputs(col, [folder])
    assert [(w.record.reference, dict(w.record.metadata)) for w in changed.rows] == [("cat.jpg", {"album": "pets"})]
