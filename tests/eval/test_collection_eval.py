"""Through a collection: exact search gives the plain numbers; HNSW loses no more than its measured recall allows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossmodal
from crossmodal.errors import ConfigError
from crossmodal.eval import RetrievalDataset, evaluate_retrieval, retrieval_ranks
from crossmodal.eval.collection_eval import evaluate_through_collection
from crossmodal.eval.metrics import retrieval_metrics
from crossmodal.testing.fake import fake_model

from .formats import ShapeSet
from .test_datasets import WRITERS

KS = (1, 5, 10)


def within_index_recall(report) -> None:
    """A query's hit can only change when its top-k changed: |lost@k| <= k * (1 - index recall@k)."""
    for k in KS:
        for lost_key, recall_key in ((f"image_retrieval_recall@{k}", f"text_to_image@{k}"),
                                     (f"text_retrieval_recall@{k}", f"image_to_text@{k}")):
            assert abs(report.recall_lost[lost_key]) <= k * (1 - report.index_recall[recall_key]) + 1e-12


@pytest.mark.parametrize("filtered", [False, True])
def test_exact_search_through_a_collection_equals_the_plain_evaluation(trained_model, shape_set: ShapeSet,
                                                                       tmp_path: Path, filtered: bool) -> None:
    result = evaluate_retrieval(trained_model, WRITERS["csv"](shape_set, tmp_path), k=KS, through_collection=True,
                                filtered=filtered)
    c = result.collection
    assert c is not None and c.store == "embedded" and c.index.startswith("embedded store, exact")
    assert c.metrics == result.metrics and all(v == 0 for v in c.recall_lost.values())
    assert all(v == 1.0 for v in c.index_recall.values())
    top = max(KS)  # ranks beyond the top k searched are unknown to the collection
    assert np.array_equal(np.minimum(result.text_to_image_ranks, top), np.minimum(c.text_to_image_ranks, top))
    assert np.array_equal(np.minimum(result.image_to_text_ranks, top), np.minimum(c.image_to_text_ranks, top))
    assert result.to_dict()["collection"]["metrics"] == result.metrics


def test_hnsw_forced_on_a_small_set(trained_model, shape_set: ShapeSet, tmp_path: Path) -> None:
    result = evaluate_retrieval(trained_model, WRITERS["tsv"](shape_set, tmp_path), k=KS, through_collection=True,
                                exact_limit=5)
    c = result.collection
    assert c.index == "embedded store, HNSW + exact rescoring (exact up to 5 items per modality)"
    within_index_recall(c)
    ks, curve = result.recall_curve("image_to_text", through_collection=True)
    assert ks == list(range(1, 11)) and curve[0] == c.metrics["text_retrieval_recall@1"]


def test_a_weak_index_loses_recall_within_its_measured_recall(tmp_path: Path) -> None:
    """A deliberately poor HNSW graph (2 links per node) over 150 images and 300 captions."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((150, 16)).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    owner = np.concatenate([np.arange(150), rng.integers(0, 150, 150)])
    texts = images[owner] + 0.6 * rng.standard_normal((300, 16)).astype(np.float32)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    dataset = RetrievalDataset([f"img{i}.png" for i in range(150)], [f"caption {j}" for j in range(300)], owner)
    metrics = retrieval_metrics(*retrieval_ranks(images, texts, owner), KS)
    with crossmodal.open_store(tmp_path / "store", exact_limit=10, connectivity=2, expansion_add=4,
                               expansion_search=2) as store:
        report = evaluate_through_collection(fake_model(dim=16), dataset, images, texts, KS, metrics, store=store)
        assert store.collections() == []  # the evaluation's collection is gone
    assert report.index == "embedded store" and report.store == "embedded"
    assert max(report.index_recall.values()) < 0.9 and any(v != 0 for v in report.recall_lost.values())
    within_index_recall(report)


def test_a_store_uri_is_opened_and_left_as_it_was(trained_model, shape_set: ShapeSet, tmp_path: Path) -> None:
    store = tmp_path / "mine"
    with crossmodal.open_store(store) as s:
        s.collection("photos", model=trained_model).add_texts(["keep me"])
    result = evaluate_retrieval(trained_model, WRITERS["csv"](shape_set, tmp_path), k=KS, store=store)
    assert result.collection.metrics == result.metrics
    with crossmodal.open_store(store) as s:
        assert [c.name for c in s.collections()] == ["photos"] and len(s.collection("photos")) == 1
    memory = evaluate_retrieval(trained_model, WRITERS["csv"](shape_set, tmp_path), k=KS, store="memory://")
    assert memory.collection.store == "memory" and memory.collection.metrics == memory.metrics
    with pytest.raises(ConfigError, match="exact_limit applies to the embedded store"):
        evaluate_retrieval(trained_model, WRITERS["csv"](shape_set, tmp_path), store="memory://", exact_limit=3)
