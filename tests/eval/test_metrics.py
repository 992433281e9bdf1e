"""The chunked metrics equal a naive full-matrix computation of their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal.eval import metrics
from crossmodal.eval.metrics import (
    accuracy_at_k,
    class_vectors,
    mean_per_class_recall,
    positive_ranks,
    recall_at_k,
    retrieval_ranks,
    top_k,
)


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def naive_recall(scores: np.ndarray, positives: list[set[int]], k: int) -> float:
    """The definition: a query hits when any positive is among the first k of a stable descending sort."""
    hits = [bool(set(np.argsort(-row, kind="stable")[:k].tolist()) & pos) for row, pos in zip(scores, positives)]
    return float(np.mean(hits))


@pytest.fixture
def captioned() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    images, texts = unit(rng, 37, 12), unit(rng, 101, 12)
    owner = np.concatenate([np.arange(37), rng.integers(0, 37, 101 - 37)])
    return images, texts, owner


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000, metrics.DEFAULT_CHUNK])
def test_chunked_ranks_equal_the_full_matrix_definition(captioned, chunk: int) -> None:
    images, texts, owner = captioned
    t2i, i2t = retrieval_ranks(images, texts, owner, chunk=chunk)
    scores = texts.astype(np.float64) @ images.astype(np.float64).T
    captions = [set(np.flatnonzero(owner == i).tolist()) for i in range(len(images))]
    for k in (1, 2, 5, 10, 37, 101):
        assert recall_at_k(t2i, k) == naive_recall(scores, [{int(o)} for o in owner], k)
        assert recall_at_k(i2t, k) == naive_recall(scores.T, captions, k)
    # the ranks themselves: the position of the (best) positive in the full sort
    order = np.argsort(-scores, axis=1, kind="stable")
    assert t2i.tolist() == [int(np.flatnonzero(order[j] == owner[j])[0]) for j in range(len(texts))]


def test_ranks_do_not_build_the_whole_matrix() -> None:
    """3,000 x 3,000 scores would take 72 MB in float64; in chunks of 2^14 the peak stays a few MB."""
    import tracemalloc

    rng = np.random.default_rng(0)
    images, texts = unit(rng, 3000, 4), unit(rng, 3000, 4)
    owner = np.arange(3000)
    tracemalloc.start()
    try:
        retrieval_ranks(images, texts, owner, chunk=1 << 14)
        top_k(texts, images, 10, chunk=1 << 14)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak


def test_ties_go_to_the_candidate_that_comes_first() -> None:
    # exactly representable vectors: candidates 0 and 2 are the same vector, so they tie for every query
    cands = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    queries = np.array([[1, 0], [1, 0]], dtype=np.float32)
    ranks = positive_ranks(queries, cands, np.array([2, 0]))
    assert ranks.tolist() == [1, 0]  # the duplicate later in the file ranks behind the earlier one
    # several positives: the best one counts, ties broken by position
    assert positive_ranks(queries, cands, [[3, 2], [1]]).tolist() == [1, 3]


def test_a_query_without_positives_misses_at_every_k() -> None:
    cands = np.eye(3, dtype=np.float32)
    ranks = positive_ranks(cands[:2], cands, [[0], []])
    assert ranks.tolist() == [0, 3] and recall_at_k(ranks, 3) == 0.5


def test_positives_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        positive_ranks(np.eye(2), np.eye(2), np.array([0, 2]))


@pytest.mark.parametrize("chunk", [1, 5, 33, metrics.DEFAULT_CHUNK])
def test_top_k_in_chunks_equals_the_full_sort(captioned, chunk: int) -> None:
    images, texts, _ = captioned
    full = np.argsort(-(texts.astype(np.float64) @ images.astype(np.float64).T), axis=1, kind="stable")[:, :10]
    assert np.array_equal(top_k(texts, images, 10, chunk=chunk), full)
    assert top_k(texts, images, 100).shape == (101, 37)


def test_class_vectors_are_normalized_means_of_the_prompts() -> None:
    rng = np.random.default_rng(0)
    prompts = unit(rng, 12, 8).reshape(4, 3, 8)
    got = class_vectors(prompts)
    for c in range(4):
        mean = prompts[c].mean(axis=0)
        np.testing.assert_allclose(got[c], mean / np.linalg.norm(mean), atol=1e-6)


def test_accuracy_and_mean_per_class_recall() -> None:
    ranks = np.array([0, 0, 1, 4, 0, 7])
    labels = np.array([0, 0, 0, 1, 1, 2])
    assert accuracy_at_k(ranks, 1, 8) == pytest.approx(3 / 6)
    assert accuracy_at_k(ranks, 5, 8) == pytest.approx(5 / 6)
    assert np.isnan(accuracy_at_k(ranks, 5, 4))  # as CLIP_benchmark's acc5 under 5 classes
    assert mean_per_class_recall(ranks, labels) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_mean_per_class_recall_is_sklearns_balanced_accuracy() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    images, classes = unit(rng, 200, 6), unit(rng, 9, 6)
    labels = rng.integers(0, 7, 200)  # classes 7 and 8 have no images: they do not count
    ranks = positive_ranks(images, classes, labels)
    predicted = np.argmax(images @ classes.T, axis=1)
    with pytest.warns(UserWarning):  # sklearn warns about predicted classes without images
        expected = sklearn.balanced_accuracy_score(labels, predicted)
    assert mean_per_class_recall(ranks, labels) == pytest.approx(expected, abs=1e-12)
