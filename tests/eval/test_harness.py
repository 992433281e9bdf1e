"""On the tiny trained model, every metric equals a naive numpy computation of its definition, in every format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossmodal.errors import ConfigError, ImageDecodeError
from crossmodal.eval import evaluate_retrieval, evaluate_zeroshot, load_retrieval_dataset
from crossmodal.eval.results import format_table

from .formats import ShapeSet, write_class_folders, write_wds
from .test_datasets import WRITERS

KS = (1, 2, 5, 10)


def naive_retrieval(model, shape_set: ShapeSet, ks=KS) -> dict[str, float]:
    """CLIP_benchmark's definitions on the full score matrix, with a stable sort (ties: the first candidate)."""
    texts, owner = shape_set.flat()
    images = model.embed_images(shape_set.paths())
    captions = model.embed_texts(texts)
    scores = captions @ images.T  # (texts, images)
    t2i = np.argsort(-scores, axis=1, kind="stable")
    i2t = np.argsort(-scores.T, axis=1, kind="stable")
    out = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = float(np.mean([owner[j] in t2i[j, :k] for j in range(len(texts))]))
        out[f"text_retrieval_recall@{k}"] = float(np.mean([(owner[i2t[i, :k]] == i).any()
                                                           for i in range(len(images))]))
    return out


@pytest.fixture(scope="module")
def expected(trained_model, shape_set: ShapeSet) -> dict[str, float]:
    return naive_retrieval(trained_model, shape_set)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_retrieval_metrics_equal_the_naive_computation_in_every_format(trained_model, shape_set: ShapeSet,
                                                                        tmp_path: Path, expected, fmt: str) -> None:
    dataset = load_retrieval_dataset(WRITERS[fmt](shape_set, tmp_path))
    result = evaluate_retrieval(trained_model, dataset, k=KS, chunk=97)
    assert result.metrics == expected
    assert result.images == 24 and result.texts == 48 and result.k == KS
    assert result.images_per_second > 0 and result.texts_per_second > 0 and result.collection is None


def test_the_trained_model_retrieves_far_above_chance(expected) -> None:
    # 24 pictures, two of each kind: chance is 1/24 at R@1 and 5/24 at R@5; measured R@1 / R@5 0.46 / 0.96
    # (t>i) and 0.38 / 0.92 (i>t)
    assert expected["image_retrieval_recall@1"] > 0.15 and expected["image_retrieval_recall@5"] > 0.4
    assert expected["text_retrieval_recall@1"] > 0.2 and expected["text_retrieval_recall@5"] > 0.5


def test_a_path_is_loaded_and_the_json_has_clip_benchmarks_shape(trained_model, shape_set: ShapeSet,
                                                                  tmp_path: Path, expected) -> None:
    result = evaluate_retrieval(trained_model, WRITERS["csv"](shape_set, tmp_path), k=(1, 2, 5, 10))
    data = json.loads(result.to_json())
    assert {"dataset", "model", "task", "metrics"} <= set(data) and data["task"] == "zeroshot_retrieval"
    assert data["metrics"] == expected and data["dataset"] == "captions"
    assert data["mode"] == "exact" and data["runtime"] == "onnx" and data["index"] == "exact"
    assert data["bytes_per_item"] == 4 * trained_model.dim and data["images"] == 24
    ks, curve = result.recall_curve("text_to_image")
    assert ks == list(range(1, 11)) and curve[0] == expected["image_retrieval_recall@1"]
    assert all(a <= b for a, b in zip(curve, curve[1:]))
    table = format_table([result])
    assert "t>i R@1" in table and f"{100 * expected['image_retrieval_recall@1']:.1f}" in table


def test_progress_bars_go_to_stderr_when_asked(trained_model, shape_set: ShapeSet, tmp_path: Path, capsys) -> None:
    path = WRITERS["csv"](shape_set, tmp_path)
    evaluate_retrieval(trained_model, path, through_collection=True)
    assert capsys.readouterr().err == ""
    evaluate_retrieval(trained_model, path, through_collection=True, progress=True)
    err = capsys.readouterr().err
    assert "images" in err and "captions" in err and "searches" in err


def naive_zeroshot(model, shape_set: ShapeSet, templates: list[str]) -> dict[str, float]:
    prompts = model.embed_texts([t.replace("{c}", c) for c in shape_set.classnames for t in templates])
    classes = prompts.reshape(len(shape_set.classnames), len(templates), -1).mean(axis=1)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    logits = model.embed_images(shape_set.paths()) @ classes.T
    labels = np.asarray(shape_set.labels)
    order = np.argsort(-logits, axis=1, kind="stable")
    top1 = order[:, 0] == labels
    return {"acc1": float(top1.mean()), "acc5": float(np.mean([labels[i] in order[i, :5] for i in range(len(labels))])),
            "mean_per_class_recall": float(np.mean([top1[labels == c].mean() for c in np.unique(labels)]))}


@pytest.mark.parametrize("fmt", ["folders", "wds"])
def test_zeroshot_metrics_equal_the_naive_computation(trained_model, shape_set: ShapeSet, tmp_path: Path,
                                                      fmt: str) -> None:
    templates = ["a {c}", "a picture of a {c}", "a {c} on white"]
    (tmp_path / "t.txt").write_text("\n".join(templates) + "\n")
    if fmt == "folders":
        root = write_class_folders(shape_set, tmp_path / "folders")
        names = tmp_path / "names.txt"  # sorted folder order, written out
        names.write_text("\n".join(sorted(shape_set.classnames)) + "\n")
        result = evaluate_zeroshot(trained_model, root, classnames=names, templates=tmp_path / "t.txt", chunk=5)
    else:
        root = write_wds(shape_set, tmp_path / "wds", task="classification")
        result = evaluate_zeroshot(trained_model, root, templates=tmp_path / "t.txt", chunk=5)
    expected = naive_zeroshot(trained_model, shape_set, templates)
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-12), key
    assert result.classes == 12 and result.templates == 3 and result.images == 24
    assert expected["acc1"] > 0.5  # 12 classes: chance is 0.083; measured 0.83


def test_zeroshot_defaults_to_clips_80_imagenet_prompts(trained_model, shape_set: ShapeSet, tmp_path: Path) -> None:
    from crossmodal.eval import IMAGENET_TEMPLATES

    result = evaluate_zeroshot(trained_model, write_class_folders(shape_set, tmp_path / "f"))
    assert result.templates == 80
    expected = naive_zeroshot(trained_model, ShapeSet(shape_set.root, shape_set.images, shape_set.captions,
                                                      [sorted(shape_set.classnames).index(shape_set.classnames[x])
                                                       for x in shape_set.labels],
                                                      sorted(shape_set.classnames)), list(IMAGENET_TEMPLATES))
    assert result.metrics == pytest.approx(expected, abs=1e-12)
    data = json.loads(result.to_json())
    assert data["task"] == "zeroshot_classification" and set(data["metrics"]) == {"acc1", "acc5",
                                                                                  "mean_per_class_recall"}


def test_acc5_under_5_classes_is_null_in_strict_json(trained_model, shape_set: ShapeSet, tmp_path: Path) -> None:
    root = tmp_path / "few"
    for name in ("red_circle", "blue_square", "green_triangle"):
        (root / name).mkdir(parents=True)
        for p in shape_set.paths():
            if p.name.startswith(name):
                (root / name / p.name).write_bytes(p.read_bytes())
    result = evaluate_zeroshot(trained_model, root, templates=["a {c}"])
    assert np.isnan(result.metrics["acc5"])
    text = result.to_json()
    assert json.loads(text)["metrics"]["acc5"] is None and "NaN" not in text


def test_a_corrupt_image_is_named(trained_model, shape_set: ShapeSet, tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(shape_set.paths()[0].read_bytes())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (tmp_path / "c.csv").write_text("image,caption\nok.png,a red circle\nbroken.png,a broken picture\n")
    with pytest.raises(ImageDecodeError, match=r"c\.csv: image .*broken\.png"):
        evaluate_retrieval(trained_model, tmp_path / "c.csv")


def test_bad_arguments(trained_model, shape_set: ShapeSet, tmp_path: Path) -> None:
    path = WRITERS["csv"](shape_set, tmp_path)
    with pytest.raises(ConfigError, match="k must be positive"):
        evaluate_retrieval(trained_model, path, k=(0, 5))
    with pytest.raises(ConfigError, match="has no \\{c\\}"):
        evaluate_zeroshot(trained_model, write_class_folders(shape_set, tmp_path / "f"), templates=["a photo"])
