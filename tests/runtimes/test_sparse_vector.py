"""SparseVector in the forms Qdrant's sparse vectors and pgvector's sparsevec take."""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal.errors import ConfigError
from crossmodal.runtimes.base import SparseVector


def sv(ids: list[int], weights: list[float]) -> SparseVector:
    return SparseVector(np.asarray(ids, dtype=np.int64), np.asarray(weights, dtype=np.float32))


def test_qdrant_form_is_the_ids_and_weights() -> None:
    assert sv([0, 7, 250001], [0.5, 0.25, 2.0]).to_qdrant() == {"indices": [0, 7, 250001], "values": [0.5, 0.25, 2.0]}
    assert sv([], []).to_qdrant() == {"indices": [], "values": []}


def test_sparsevec_counts_from_one_and_keeps_float32() -> None:
    weights = np.asarray([0.2, 1.5, 1e-8], dtype=np.float32)
    text = sv([0, 5, 9], weights.tolist()).to_sparsevec(10)
    assert text == "{1:0.2,6:1.5,10:1e-08}/10"
    # each value reads back as the very float32 it was
    values = [np.float32(float(pair.split(":")[1])) for pair in text[1:text.index("}")].split(",")]
    np.testing.assert_array_equal(values, weights)
    assert sv([], []).to_sparsevec(3) == "{}/3"


@pytest.mark.parametrize("ids, dim, message", [
    ([3], 3, "token id 3 does not fit a sparsevec of dimension 3"),
    ([-1], 3, "token id -1 does not fit"),
    ([1], 0, "dimension must be an int from 1"),
    ([1], True, "dimension must be an int from 1"),
    ([1], 2_000_000_000, "dimension must be an int from 1"),
])
def test_sparsevec_refuses_what_pgvector_cannot_hold(ids: list[int], dim: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sv(ids, [1.0] * len(ids)).to_sparsevec(dim)
    with pytest.raises(ConfigError, match="16,001 entries; pgvector's sparsevec holds at most 16,000"):
        sv(list(range(16_001)), [1.0] * 16_001).to_sparsevec(20_000)
