"""Items added over HTTP keep the sparse vectors and multi-vectors of a model that has them, as library adds do."""

from __future__ import annotations

import numpy as np
import pytest

import crossmodal
from crossmodal.server.precomputed import PrecomputedModel
from crossmodal.testing.outputs_family import OUTPUTS_DENSE_ONLY, build_outputs_model, outputs_registry

from .helpers import client_for

TEXTS = ["red red circle", "a quiet harbour", "一条 龙 龙"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> crossmodal.Model:
    return crossmodal.load_model(build_outputs_model(tmp_path_factory.mktemp("outputs") / "m", seed=4),
                                 families=outputs_registry())


def test_http_adds_store_the_models_sparse_vectors_and_multivectors(model: crossmodal.Model) -> None:
    store = crossmodal.open_store("memory://")
    with client_for(model, store=store) as client:
        added = client.post("/v1/collections/notes/items", json={"items": [{"text": t} for t in TEXTS]})
        assert added.status_code == 200, added.text
        found = client.post("/v1/collections/notes/search", json={"text": "harbour", "using": "sparse"})
        assert found.status_code == 200, found.text
        assert [h["text"] for h in found.json()["hits"]][:1] == ["a quiet harbour"]
    records = {r.text: r for r in store.collection("notes", model=model).backend.scan(vectors=True)}
    want = model.embed_text_outputs(TEXTS, outputs=("sparse", "multivector"))
    for text, sparse, multi in zip(TEXTS, want.sparse, want.multivector):
        assert records[text].sparse == sparse.as_dict()
        np.testing.assert_allclose(records[text].multivector, multi, atol=1e-3)  # kept as float16


def test_the_stand_in_gives_only_the_outputs_its_model_has(model: crossmodal.Model, tmp_path) -> None:
    assert hasattr(PrecomputedModel(model, {}), "embed_sparse")
    plain = crossmodal.load_model(build_outputs_model(tmp_path / "d", family=OUTPUTS_DENSE_ONLY.name),
                                  families=outputs_registry())
    assert not hasattr(PrecomputedModel(plain, {}), "embed_sparse")
    with pytest.raises(AttributeError):
        _ = PrecomputedModel(plain, {}).embed_multivectors
