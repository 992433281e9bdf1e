"""--plot draws recall curves and similarity heatmaps; without matplotlib, one error naming the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from crossmodal.cli.main import cli
from crossmodal.errors import RuntimeUnavailable
from crossmodal.eval import evaluate_retrieval, plot_recall_curves, plot_similarity

from .formats import ShapeSet
from .test_datasets import WRITERS

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)


def test_recall_curves_and_similarity_heatmap(trained_model, shape_set: ShapeSet, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = evaluate_retrieval(trained_model, WRITERS["csv"](shape_set, tmp_path), through_collection=True)
    out = plot_recall_curves([result], tmp_path / "r.png")
    assert out.read_bytes().startswith(PNG) and out.stat().st_size > 10_000
    heat = plot_similarity(["text:a", "text:b", "image:c.png"], np.eye(3), tmp_path / "s.png")
    assert heat.read_bytes().startswith(PNG)


def test_cli_plots(model_cache: Path, trained_clip_onnx_dir: Path, shape_set: ShapeSet, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    env = {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(trained_clip_onnx_dir)}
    dataset = WRITERS["tsv"](shape_set, tmp_path)
    result = CliRunner().invoke(cli, ["eval", "retrieval", str(dataset), "--plot", str(tmp_path / "r.png")], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").read_bytes().startswith(PNG)
    picture = shape_set.paths()[0]
    result = CliRunner().invoke(cli, ["similarity", "text:a red circle", f"image:{picture}",
                                      f"pair:{picture}|a red circle", "--plot", str(tmp_path / "s.png")], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.png").read_bytes().startswith(PNG) and "text:a red circle" in result.stdout


def test_without_matplotlib_one_error_names_the_extra(no_matplotlib, model_cache: Path,
                                                      trained_clip_onnx_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'crossmodal\[plot\]'"):
        plot_similarity(["a"], np.eye(1), tmp_path / "s.png")
    env = {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(trained_clip_onnx_dir)}
    result = CliRunner().invoke(cli, ["similarity", "text:a", "text:b", "--plot", str(tmp_path / "s.png")], env=env)
    assert result.exit_code == 4 and result.stderr == (
        "error: drawing plots needs matplotlib: pip install 'crossmodal[plot]'\n")


def test_a_plot_file_needs_a_picture_suffix(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from crossmodal.errors import ConfigError

    with pytest.raises(ConfigError, match=r"must end in \.png, \.svg or \.pdf"):
        plot_similarity(["a"], np.eye(1), tmp_path / "s.txt")


def test_heatmap_labels_show_file_names() -> None:
    from crossmodal.eval.plots import _short

    assert _short("image:../shared/data/images/cat.png") == "image:cat.png"
    assert _short("pair:photos/beach.jpg|at night") == "pair:beach.jpg|at night"
    assert _short("text:and/or") == "text:and/or"
    assert _short("text:" + "x" * 60).endswith("...") and len(_short("text:" + "x" * 60)) == 40
