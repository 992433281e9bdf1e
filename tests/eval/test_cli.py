"""`crossmodal eval retrieval` and `crossmodal eval zeroshot`: the library's numbers, tables, JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import crossmodal
from crossmodal.cli.main import cli
from crossmodal.eval import evaluate_retrieval

from .formats import ShapeSet, write_class_folders
from .test_datasets import WRITERS


@pytest.fixture
def env(model_cache: Path, trained_clip_onnx_dir: Path) -> dict[str, str]:
    return {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(trained_clip_onnx_dir),
            "CROSSMODAL_STORE": "memory://"}


def run(args: list[str], env: dict[str, str], code: int = 0):
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == code, result.output
    return result


def test_retrieval_compares_modes_side_by_side(env, trained_model, trained_clip_onnx_dir: Path, model_cache: Path,
                                               shape_set: ShapeSet, tmp_path: Path) -> None:
    dataset = WRITERS["csv"](shape_set, tmp_path)
    out = tmp_path / "r.json"
    result = run(["eval", "retrieval", str(dataset), "--mode", "exact", "--mode", "fast", "--k", "1,5",
                  "--json", str(out), "--quiet"], env)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("captions: 24 images, 48 captions (karpathy-csv")
    assert lines[1].split()[:6] == ["model", "mode", "t>i", "R@1", "t>i", "R@5"]
    assert [line.split()[1] for line in lines[2:4]] == ["exact", "fast"]
    data = json.loads(out.read_text())
    assert isinstance(data, list) and [d["mode"] for d in data] == ["exact", "fast"]
    library = evaluate_retrieval(trained_model, dataset, k=(1, 5))
    assert data[0]["metrics"] == library.metrics and data[0]["task"] == "zeroshot_retrieval"
    fast = crossmodal.load_model(trained_clip_onnx_dir, mode="fast", cache_dir=model_cache)
    assert data[1]["metrics"] == evaluate_retrieval(fast, dataset, k=(1, 5)).metrics
    assert f"{100 * library.metrics['image_retrieval_recall@1']:.1f}" in lines[2]


def test_retrieval_json_to_stdout_and_through_a_collection(env, shape_set: ShapeSet, tmp_path: Path) -> None:
    dataset = WRITERS["wds"](shape_set, tmp_path)
    result = run(["eval", "retrieval", str(dataset), "--json", "-", "--through-collection", "--exact-limit", "5"], env)
    data = json.loads(result.stdout)  # one run: one object, CLIP_benchmark's shape
    assert data["dataset"] == "wds/shapes" and data["collection"]["index"].startswith("embedded store, HNSW")
    assert set(data["collection"]["recall_lost"]) == set(data["metrics"])
    text = run(["eval", "retrieval", str(dataset), "--through-collection"], env).stdout
    assert "exact via collection" in text and "recall lost to the index (points)" in text
    assert "index recall against exact search" in text


def test_zeroshot(env, trained_model, shape_set: ShapeSet, tmp_path: Path) -> None:
    root = write_class_folders(shape_set, tmp_path / "classes")
    (tmp_path / "t.txt").write_text("a {c}\na picture of a {c}\n")
    result = run(["eval", "zeroshot", str(root), "--templates", str(tmp_path / "t.txt"), "--json", "-"], env)
    data = json.loads(result.stdout)
    assert data["task"] == "zeroshot_classification" and data["classes"] == 12 and data["templates"] == 2
    from crossmodal.eval import evaluate_zeroshot

    assert data["metrics"] == evaluate_zeroshot(trained_model, root, templates=tmp_path / "t.txt").metrics
    table = run(["eval", "zeroshot", str(root), "--templates", str(tmp_path / "t.txt")], env).stdout
    assert "classes: 24 images, 12 classes, 2 templates (folders" in table and "acc1" in table


@pytest.mark.parametrize(("body", "message"), [
    ("image,caption\nmissing.png,a ghost\n", "bad.csv:2: image 'missing.png' not found"),
    ("image;caption\n", "bad.csv:1: expected the header line image,caption"),
    ("image,caption\nmissing.png\n", "bad.csv:2: expected image,caption, found no comma"),
])
def test_a_bad_dataset_is_one_error_line(env, tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "bad.csv").write_text(body)
    result = run(["eval", "retrieval", str(tmp_path / "bad.csv")], env, code=2)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr


def test_a_class_folder_without_images_is_one_error_line(env, shape_set: ShapeSet, tmp_path: Path) -> None:
    root = write_class_folders(shape_set, tmp_path / "classes")
    (root / "empty_class").mkdir()
    result = run(["eval", "zeroshot", str(root)], env, code=2)
    assert result.stderr.count("\n") == 1 and "empty_class holds no images" in result.stderr


def test_option_errors(env, shape_set: ShapeSet, tmp_path: Path) -> None:
    dataset = str(WRITERS["csv"](shape_set, tmp_path))
    assert "go with --through-collection" in run(["eval", "retrieval", dataset, "--store", "memory://"], env, 2).stderr
    assert "--k takes comma-separated" in run(["eval", "retrieval", dataset, "--k", "1,x"], env, 2).stderr
