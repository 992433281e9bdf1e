"""The in-memory views: exact search equals numpy, HNSW keeps removals, and usearch cannot break torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from crossmodal.stores.embedded.views import AnnParams, AnnView, ExactView


def unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_view_matches_numpy_with_removals_and_allowed_keys() -> None:
    x, q = unit(500, 8), unit(1, 8, seed=1)[0]
    view = ExactView(8)
    view.add(np.arange(300), x[:300])
    view.add(np.arange(300, 500), x[300:])
    view.remove(np.arange(0, 500, 2))
    keys, scores = view.search(q, 5)
    odd = np.arange(1, 500, 2)
    expected = odd[np.argsort(-(x[odd] @ q))[:5]]
    assert sorted(keys.tolist()) == sorted(expected.tolist()) and len(view) == 250
    np.testing.assert_allclose(np.sort(scores), np.sort(x[expected] @ q), atol=1e-6)
    allowed = np.array([1, 3, 5])
    assert sorted(view.search(q, 10, allowed)[0].tolist()) == [1, 3, 5]


def test_ann_view_finds_its_own_vectors_and_forgets_removed_keys(tmp_path) -> None:
    x = unit(300, 16)
    view = AnnView(16, AnnParams())
    view.add(np.arange(300), x)
    view.remove(np.array([7]))
    assert view.search(x[8], 1)[0][0] == 8 and 7 not in view.search(x[7], 5)[0]
    view.save(tmp_path / "v.usearch")
    again = AnnView.load(tmp_path / "v.usearch", 16, AnnParams())
    assert len(again) == 299 and again.contains(np.array([7, 8])).tolist() == [False, True]


def test_loading_usearch_first_does_not_break_torch() -> None:
    """usearch's static libstdc++ must not take over iostreams: a torch ONNX export after it stays fast."""
    pytest.importorskip("torch")
    code = textwrap.dedent("""
        from crossmodal.stores.embedded.views import _usearch_index
        _usearch_index()
        import io, torch
        class M(torch.nn.Module):
            def forward(self, x):
                return x.view(x.size(0), -1).sum(1)
        torch.onnx.export(M(), (torch.randn(2, 3, 4),), io.BytesIO(), dynamo=False)
    """)
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_ann_score_bounds_hold_against_the_exact_cosine(dtype: str) -> None:
    # The embedded store reads from SQLite only the candidates these bounds cannot rule out, so they must hold.
    x, queries = unit(2000, 512), unit(20, 512, seed=3)
    view = AnnView(512, AnnParams(dtype=dtype))
    view.add(np.arange(2000), x)
    for q in queries:
        keys, _ = view.search(q, 50)
        scores, bounds = view.score_bounds(keys, q)
        off = np.abs(scores.astype(np.float64) - x[keys] @ q)
        assert (off <= bounds).all() and off.max() > 0
        assert np.median(bounds) < (0.004 if dtype == "bf16" else 0.0006)  # tight enough to rule candidates out
    assert view.score_bounds(np.empty(0, dtype=np.int64), queries[0])[0].shape == (0,)


@pytest.mark.parametrize("dtype", ["bf16", "f16", "f32"])
def test_search_error_bounds_usearchs_own_scores(dtype: str) -> None:
    # For unit vectors the store prunes candidates by usearch's own scores (query rounded too) with this one bound.
    x, queries = unit(2000, 512), unit(20, 512, seed=3)
    view = AnnView(512, AnnParams(dtype=dtype))
    view.add(np.arange(2000), x)
    worst = 0.0
    for q in queries:
        keys, scores = view.search(q, 50)
        bound = view.search_error(q, 1.0 + 1e-3)
        off = np.abs(scores.astype(np.float64) - x[keys].astype(np.float64) @ q)
        assert bound is not None and (off <= bound).all()
        worst = max(worst, float(off.max() / bound))
        assert bound < {"bf16": 0.006, "f16": 0.0008, "f32": 1e-4}[dtype]  # tight enough to rule candidates out
    if dtype != "f32":  # (f32's error is all in the sums, far below their worst case)
        assert worst > 0.05  # the bound is not vacuous: some candidate comes within a twentieth of it


def test_bounds_follow_the_precision_a_loaded_file_holds(tmp_path) -> None:
    # A store opened with other options than it was built with: its bf16 file is still bounded as bf16.
    x, q = unit(500, 64), unit(1, 64, seed=2)[0]
    view = AnnView(64, AnnParams(dtype="bf16"))
    view.add(np.arange(500), x)
    view.save(tmp_path / "v.usearch")
    loaded = AnnView.load(tmp_path / "v.usearch", 64, AnnParams(dtype="f32"))
    keys, scores = loaded.search(q, 50)
    exact = x[keys].astype(np.float64) @ q
    assert (np.abs(scores - exact) <= loaded.search_error(q, 1.0 + 1e-3)).all()
    copies, bounds = loaded.score_bounds(keys, q)
    assert (np.abs(copies - exact) <= bounds).all() and loaded.search_error(q, 1.0) == view.search_error(q, 1.0)


def test_search_error_is_none_without_a_rounding_bound() -> None:
    view = AnnView(16, AnnParams(dtype="i8"))
    assert view.search_error(unit(1, 16)[0], 1.0) is None


@pytest.mark.parametrize("dtype", ["bf16", "f16", "f32"])
def test_ann_vectors_equal_usearchs_own_conversion(dtype: str, tmp_path) -> None:
    x = unit(200, 64, seed=5)
    view = AnnView(64, AnnParams(dtype=dtype))
    view.add(np.arange(200), x)
    keys = np.array([5, 0, 199, 17])
    expected = np.asarray(view.index.get(keys.astype(np.uint64), dtype="f32"), dtype=np.float32)
    np.testing.assert_array_equal(view.vectors(keys), expected)
    view.save(tmp_path / "v.usearch")
    np.testing.assert_array_equal(AnnView.load(tmp_path / "v.usearch", 64, AnnParams()).vectors(keys), expected)
    assert view.vectors(np.empty(0, dtype=np.int64)).shape == (0, 64)
