"""Reciprocal rank fusion and weighted fusion, against numbers worked out by hand."""

from __future__ import annotations

import pytest

from crossmodal.errors import ConfigError
from crossmodal.retrieval import Fusion, fuse


def test_rrf_is_the_sum_of_one_over_k_plus_rank_from_1() -> None:
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    keyword = [("c", 12.0), ("d", 3.0)]
    fused = dict(fuse({"dense": dense, "keyword": keyword}))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)
    assert [i for i, _ in fuse({"dense": dense, "keyword": keyword})] == ["c", "a", "b", "d"]  # b, d tie: by id


def test_rrf_k_and_weights() -> None:
    fused = dict(fuse({"dense": [("a", 1.0)], "keyword": [("b", 1.0), ("a", 0.5)]},
                      Fusion(k=2, weights={"keyword": 3.0})))
    assert fused["a"] == pytest.approx(1 / 3 + 3 / 4)
    assert fused["b"] == pytest.approx(3 / 3)


def test_weighted_is_bge_m3_compute_score() -> None:
    fused = dict(fuse({"dense": [("a", 0.8), ("b", 0.4)], "sparse": [("a", 0.2)]},
                      Fusion(method="weighted", weights={"dense": 0.4, "sparse": 0.2})))
    assert fused["a"] == pytest.approx((0.4 * 0.8 + 0.2 * 0.2) / 0.6)
    assert fused["b"] == pytest.approx(0.4 * 0.4 / 0.6)  # the signal that missed it counts 0


@pytest.mark.parametrize("bad", [dict(method="max"), dict(k=-1), dict(k=1.5), dict(weights={"dense": -1})])
def test_bad_fusion_options_are_named(bad) -> None:
    with pytest.raises(ConfigError):
        Fusion(**bad)
