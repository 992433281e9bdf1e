"""`crossmodal models verify`: the fidelity of a mode against exact, measured and reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from crossmodal import fidelity
from crossmodal.cli.main import cli
from crossmodal.fidelity import FidelityReport, agreement_recall, compare_modes, synthetic_corpus, topk_overlap
from crossmodal.testing.fake import fake_model

from .conftest import IMAGES, shared_images


def test_topk_overlap_counts_shared_neighbours() -> None:
    ref = np.array([[5.0, 4, 3, 2, 1], [1, 2, 3, 4, 5]])
    same_sets = np.array([[4.0, 5, 3, 0, 0], [0, 0, 3, 5, 4]])  # same top-3, another order
    one_swapped = np.array([[5.0, 4, 0, 3, 1], [1, 2, 3, 4, 5]])
    assert topk_overlap(ref, ref, 3) == 1.0
    assert topk_overlap(ref, same_sets, 3) == 1.0
    assert topk_overlap(ref, one_swapped, 3) == pytest.approx((2 / 3 + 1) / 2)
    assert topk_overlap(ref, -ref, 2) == 0.0


def test_agreement_recall_is_the_rank_of_the_reference_best_match() -> None:
    ref = np.array([[5.0, 4, 3, 2, 1], [1, 2, 3, 4, 5], [0, 0, 9, 0, 0]])
    cand = np.array([[1.0, 5, 4, 3, 2], [1, 2, 3, 4, 5], [9, 9, 9, 9, 9]])  # ranks of ref's best: 4, 0, 2 (ties)
    assert agreement_recall(ref, cand, [1, 3, 5]) == {"recall@1": 1 / 3, "recall@3": 2 / 3, "recall@5": 1.0}
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 30)), rng.standard_normal((40, 30))
    best = a.argmax(axis=1)
    naive = [float(np.mean([best[i] in np.argsort(-b[i], kind="stable")[:k] for i in range(40)])) for k in (1, 5, 10)]
    assert list(agreement_recall(a, b).values()) == naive


def test_an_overlap_exactly_at_the_bound_is_not_rounded_below_it() -> None:
    # 28 queries, each sharing 9 of its top 10: exactly 0.9 (a mean of 28 fractions 0.9 is 0.8999999999999998).
    ref = np.tile(np.arange(20.0, 0, -1), (28, 1))
    cand = ref.copy()
    cand[:, 9], cand[:, 10] = ref[:, 10], ref[:, 9]  # the 10th and 11th swap places
    assert topk_overlap(ref, cand, 10) == 0.9


def test_a_model_compared_with_itself_is_perfect(images_dir: Path) -> None:
    model = fake_model()
    report = compare_modes(model, model, shared_images()[:12], ["a red circle", "a dog", "two cats"])
    assert report.passed and report.image_cosine_min == pytest.approx(1.0) and report.text_to_image_overlap == 1.0
    assert report.text_to_image_recall == {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0}
    assert report.image_to_image_recall == {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0}


def test_a_different_model_fails_the_bounds(images_dir: Path) -> None:
    report = compare_modes(fake_model(seed=0), fake_model(seed=1, mode="fast"), shared_images()[:12], ["a red circle"])
    assert not report.passed
    assert report.mode == "fast" and report.image_cosine_min < 0.99
    assert "FAIL" in report.lines()[0]


def test_the_synthetic_corpus_is_deterministic_and_varied() -> None:
    images, texts = synthetic_corpus(20, 10)
    again, _ = synthetic_corpus(20, 10)
    assert all(np.array_equal(a, b) for a, b in zip(images, again))
    assert len({a.tobytes() for a in images}) == 20 and len(texts) == 10
    assert images[0].shape == (192, 256, 3) and images[0].dtype == np.uint8


def test_cli_verify_reports_the_fast_mode(tiny_clip_onnx_dir: Path, tmp_path: Path) -> None:
    captions = tmp_path / "captions.txt"
    rows = (IMAGES / "captioned" / "captions.tsv").read_text(encoding="utf-8").splitlines()[1:]
    captions.write_text("\n".join(r.split("\t")[1] for r in rows) + "\n", encoding="utf-8")
    env = {"CROSSMODAL_CACHE": str(tmp_path / "cache")}
    args = ["models", "verify", str(tiny_clip_onnx_dir), "--mode", "fast", "--images", str(IMAGES), "--texts", str(captions)]
    result = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["mode"] == "fast" and report["reference_mode"] == "exact"
    assert report["images"] == len(shared_images()) and report["texts"] == len(rows)
    assert 0.99 <= report["image_cosine_min"] < 1.0 and report["text_to_image_overlap"] >= 0.9
    assert set(report["text_to_image_recall"]) == {"recall@1", "recall@5", "recall@10"}
    assert report["text_to_image_recall"]["recall@10"] >= report["text_to_image_recall"]["recall@1"] > 0.5
    text = CliRunner().invoke(cli, args, env=env)
    assert text.exit_code == 0 and "PASS" in text.stdout and "top-10 overlap" in text.stdout
    assert "retrieval agreement (exact's best match in fast's top-1/5/10)  text->image" in text.stdout


def test_cli_verify_exits_1_when_a_bound_fails(monkeypatch, tiny_clip_onnx_dir: Path) -> None:
    failing = FidelityReport(model="m", mode="fast", reference_mode="exact", images=2, texts=1, image_cosine_min=0.95,
                             image_cosine_mean=0.97, text_cosine_min=0.999, text_cosine_mean=0.999, k=1,
                             text_to_image_overlap=1.0, image_to_image_overlap=1.0, worst_image="a.jpg", worst_text="'x'")
    monkeypatch.setattr(fidelity, "verify_model", lambda *a, **k: failing)
    result = CliRunner().invoke(cli, ["models", "verify", str(tiny_clip_onnx_dir)])
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "a.jpg" in result.stdout
