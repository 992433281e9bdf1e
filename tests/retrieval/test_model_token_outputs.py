"""A loaded model whose family gives sparse and multi-vector outputs fills a collection's token vectors and searches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossmodal
from crossmodal.errors import ConfigError
from crossmodal.testing.outputs_family import OUTPUTS_DENSE_ONLY, build_outputs_model, outputs_registry

REGISTRY = outputs_registry()
TEXTS = ["a red circle", "red red tree", "a blue sea", "the old house by the sea", "two dogs"]


@pytest.fixture(params=["memory", "embedded"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    st = crossmodal.open_store("memory://" if request.param == "memory" else tmp_path / "store")
    yield st
    st.close()


@pytest.fixture
def model(tmp_path: Path) -> crossmodal.Model:
    return crossmodal.load_model(build_outputs_model(tmp_path / "m", seed=6), families=REGISTRY)


def test_items_get_the_models_token_vectors_and_search_by_them(store, model: crossmodal.Model,
                                                                   tmp_path: Path) -> None:
    col = store.collection("tok", model=model)
    col.add_texts(TEXTS, ids=[f"t{i}" for i in range(len(TEXTS))])
    out = model.embed_text_outputs(TEXTS, outputs=("sparse", "multivector"))
    assert out.sparse is not None and out.multivector is not None
    for i, r in enumerate(col.get_many([f"t{i}" for i in range(len(TEXTS))], vectors=True)):
        assert r.sparse == out.sparse[i].as_dict()
        np.testing.assert_array_equal(r.multivector, out.multivector[i].astype(np.float16))
    # sparse search: the exact dot product with the query's weights
    query = model.embed_text_outputs(["red sea"], outputs=("sparse",)).sparse[0].as_dict()  # type: ignore[index]
    expected = sorted(((f"t{i}", sum(w * s.as_dict().get(t, 0.0) for t, w in query.items()))
                       for i, s in enumerate(out.sparse)), key=lambda t: (-t[1], t[0]))
    expected = [e for e in expected if e[1] > 0]
    hits = col.search("red sea", using="sparse", top_k=10)
    assert [(h.id, h.score) for h in hits] == [(i, pytest.approx(s)) for i, s in expected]
    reranked = col.search("red sea", using="keyword", rerank="multivector", top_k=3)
    assert reranked and all(set(h.signals) == {"keyword", "multivector"} for h in reranked)
    dense_only = crossmodal.load_model(build_outputs_model(tmp_path / "d", family=OUTPUTS_DENSE_ONLY.name),
                                       families=REGISTRY)
    plain = store.collection("plain", model=dense_only)
    plain.add_texts(["a red circle"])
    assert next(plain.items(vectors=True)).sparse is None
    with pytest.raises(ConfigError, match=r"sparse search needs a model with a sparse output .* has none"):
        plain.search("red", using="sparse")
