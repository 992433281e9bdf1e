"""`crossmodal index`: folders -> a collection, reporting what it did; reruns embed only what changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmodal.cli.index import _Bar
from crossmodal.cli.main import cli


@pytest.fixture
def env(tmp_path: Path, model_cache: Path, tiny_clip_onnx_dir: Path) -> dict[str, str]:
    return {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(tiny_clip_onnx_dir),
            "CROSSMODAL_STORE": str(tmp_path / "store")}


@pytest.fixture
def folder(tmp_path: Path, images_dir: Path) -> Path:
    out = tmp_path / "pics"
    out.mkdir()
    for name in ("cat.jpg", "bee.jpg", "tree.webp", "duck.jp2"):
        shutil.copy(images_dir / "formats" / name, out / name)
    (out / "note.txt").write_text("a cat sat on the mat")
    return out


def invoke(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_index_reports_counts_and_reruns_skip_unchanged_files(env, folder: Path) -> None:
    first = invoke(["index", str(folder), "--json"], env)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["files"], report["added"], report["skipped"], report["failed"]) == (5, 5, 0, 0)
    (folder / "bee.jpg").unlink()
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    again = invoke(["index", str(folder), "--prune"], env)
    assert again.exit_code == 0
    assert "0 added, 0 updated, 4 skipped (unchanged), 1 removed, 1 failed" in again.stdout
    assert "broken.png" in again.stderr and "1 files could not be indexed" in again.stderr
    assert "item/s" not in again.stderr  # not a terminal: no progress bar


def test_an_existing_collection_keeps_its_model(env, folder: Path, tmp_path: Path) -> None:
    assert invoke(["index", str(folder), "-q"], env).exit_code == 0
    other = {**env, "CROSSMODAL_MODEL": "no-such-model"}  # the default changed: the collection still knows its model
    result = invoke(["index", str(folder), "--json"], other)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == 5


def test_a_model_from_another_space_is_refused(env, folder: Path, tiny_siglip_onnx_dir: Path) -> None:
    assert invoke(["index", str(folder), "-q"], env).exit_code == 0
    result = invoke(["index", str(folder), "--model", str(tiny_siglip_onnx_dir)], env)
    assert result.exit_code == 5
    assert "was built in space" in result.stderr and "another" not in result.stdout


def test_progress_bar_shows_rate_and_eta(capsys) -> None:
    bar = _Bar(enabled=True)
    bar(3, 10)
    bar(10, 10)
    bar.close()
    err = capsys.readouterr().err
    assert "10/10" in err and "item/s" in err
    silent = _Bar(enabled=False)
    silent(1, 2)
    assert capsys.readouterr().err == ""
