"""Pairs through the model's fused encoder wherever pairs are embedded, and the pair rule a space records.

A model whose spec says ``fusion.kind == "graph"`` makes a pair's vector with
its own encoder (here the test family's ``0.5 * image - text``, which no
weighted sum gives). Collections, ingest's caption pairs, ``crossmodal
similarity`` and ``/v1/embeddings`` all reach it; the space records the rule,
and a collection refuses a model whose rule differs (same weights, same
fingerprint, other rule).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import crossmodal
from crossmodal.cli.main import cli
from crossmodal.cli.options import CliContext
from crossmodal.embedder import Model
from crossmodal.errors import ConfigError, SpaceMismatch
from crossmodal.models.files import ModelFiles, ResolvedModel
from crossmodal.models.spec import Capabilities, Fusion, ModelSpec
from crossmodal.runtimes.base import RuntimeOptions
from crossmodal.settings import Settings
from crossmodal.space import PairRule, Space
from crossmodal.testing.fake import FakeEncoder, FakeTokenizer, fake_spec
from crossmodal.testing.outputs_family import OutputsEncoder, build_outputs_model, outputs_registry

REGISTRY = outputs_registry()


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def picture(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((24, 24), Image.NEAREST).save(path)
    return path


@pytest.fixture
def graph_dir(tmp_path: Path) -> Path:
    return build_outputs_model(tmp_path / "graph", seed=5)


@pytest.fixture
def summed_dir(tmp_path: Path) -> Path:
    """The same weights (seed), composing pairs as a weighted sum instead."""
    return build_outputs_model(tmp_path / "summed", seed=5, fusion="weighted-sum")


def fused_by_hand(model: crossmodal.Model, image: Path, text: str) -> np.ndarray:
    encoder = OutputsEncoder(model.dim, seed=5)
    (tokens,) = FakeTokenizer(model.spec.text).tokenize([text])
    ids = {"input_ids": np.asarray([tokens.ids], dtype=np.int64)}  # type: ignore[union-attr]
    return unit(encoder.encode_pairs(model.preprocess_image(image)[None], ids))[0]


# -- the rule -----------------------------------------------------------------------------------------------------


def test_pair_rules_and_their_record() -> None:
    def rule(spec: ModelSpec, capabilities: Capabilities) -> PairRule:
        model = Model(ResolvedModel(spec, ModelFiles(Path("."), "onnx"), "w", "local"), FakeEncoder(spec.dim),
                      FakeTokenizer(spec.text), runtime="fake", options=RuntimeOptions(), capabilities=capabilities)
        return model.space.pairs

    assert rule(fake_spec(), Capabilities()) == PairRule("weighted-sum", 0.5)
    assert rule(fake_spec().with_(fusion=Fusion(image_weight=0.25)), Capabilities()) == PairRule("weighted-sum", 0.25)
    assert rule(fake_spec().with_(fusion=Fusion(kind="graph")), Capabilities()) == PairRule("graph", None)
    assert rule(fake_spec(), Capabilities(inputs=("text",))) == PairRule("none", None)
    for rule in (PairRule(), PairRule("weighted-sum", 0.3), PairRule("graph", None), PairRule("none", None)):
        space = Space("m", 16, True, "abcd", pairs=rule)
        assert Space.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    # a space recorded before spaces recorded their pair rule: every pair was a weighted sum at 0.5
    old = {"model": "m", "dim": 16, "normalized": True, "fingerprint": "abcd", "mode": "exact"}
    assert Space.from_dict(old).pairs == PairRule("weighted-sum", 0.5)
    with pytest.raises(ConfigError, match="has no image weight"):
        PairRule("graph", 0.5)
    with pytest.raises(ConfigError, match=r"needs an image weight in \[0, 1\]"):
        PairRule("weighted-sum", 1.5)
    with pytest.raises(ConfigError, match="a pair rule is one of weighted-sum, graph, none"):
        PairRule("mean", None)  # type: ignore[arg-type]


def test_same_space_other_rule_is_refused(graph_dir: Path, summed_dir: Path) -> None:
    graph = crossmodal.load_model(graph_dir, families=REGISTRY)
    summed = crossmodal.load_model(summed_dir, families=REGISTRY)
    assert graph.space.fingerprint == summed.space.fingerprint  # same weights: texts and images agree
    np.testing.assert_array_equal(graph.embed_texts(["a cat"]), summed.embed_texts(["a cat"]))
    assert graph.space.pairs == PairRule("graph", None) and summed.space.pairs == PairRule("weighted-sum", 0.5)
    with pytest.raises(SpaceMismatch, match="pairs made by the model's fused pair encoder, but the model given makes "
                                            r"pairs by a weighted sum .*default image weight 0.5"):
        graph.space.check_same(summed.space)
    summed.space.check_same(Space.from_dict(summed.space.to_dict()))


# -- every path that embeds pairs ---------------------------------------------------------------------------------------


def test_collections_store_fused_pairs_and_refuse_another_rule(graph_dir: Path, summed_dir: Path,
                                                                  tmp_path: Path) -> None:
    graph = crossmodal.load_model(graph_dir, families=REGISTRY)
    summed = crossmodal.load_model(summed_dir, families=REGISTRY)
    cat = picture(tmp_path / "cat.png", 1)
    want = fused_by_hand(graph, cat, "a cat")
    composed = summed.embed_pairs([cat], ["a cat"])[0]
    assert float(want @ composed) < 0.99  # the two rules give different pair vectors
    store = crossmodal.open_store(tmp_path / "store")
    try:
        col = store.collection("pairs", model=graph)
        col.add_pairs([cat], ["a cat"], ids=["p"])
        col.add_texts(["a cat"], ids=["t"])
        np.testing.assert_allclose(col.get("p", vector=True).vector, want, atol=1e-6)
        assert col.search(pair=(cat, "a cat"), top_k=1)[0].id == "p"
        assert col.describe()["pairs"] == {"kind": "graph", "image_weight": None}
        with pytest.raises(SpaceMismatch, match="collection 'pairs' holds image\\+text pairs made by the model's fused"):
            store.collection("pairs", model=summed)
        store.collection("summed", model=summed).add_pairs([cat], ["a cat"], ids=["p"])
        with pytest.raises(SpaceMismatch, match="made by a weighted sum"):
            store.collection("summed", model=graph)
    finally:
        store.close()
    reopened = crossmodal.open_store(tmp_path / "store")  # the rule is stored with the collection
    try:
        assert reopened.collection("pairs", create=False).space.pairs == PairRule("graph", None)
        assert reopened.collection("summed", create=False).space.pairs == PairRule("weighted-sum", 0.5)
    finally:
        reopened.close()


def cli_obj(tmp_path: Path) -> CliContext:
    return CliContext(Settings.from_env({"CROSSMODAL_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}), REGISTRY)


def test_ingest_caption_pairs_use_the_fused_encoder(graph_dir: Path, summed_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    picture(folder / "p0.png", 0)
    picture(folder / "p1.png", 1)
    (tmp_path / "caps.tsv").write_text("file\tcaption\np0.png\ta red thing\np1.png\ta blue thing\n")
    store = tmp_path / "store"
    args = ["index", str(folder), "--store", str(store), "--collection", "c", "--captions", str(tmp_path / "caps.tsv"),
            "--workers", "0", "--quiet"]
    obj = cli_obj(tmp_path)
    result = CliRunner().invoke(cli, [*args, "--model", str(graph_dir)], obj=obj)
    assert result.exit_code == 0, result.output
    graph = crossmodal.load_model(graph_dir, families=REGISTRY)
    st = crossmodal.open_store(store)
    try:
        pairs = {r.reference: r for r in st.collection("c", create=False).items(modality="pair", vectors=True)}
    finally:
        st.close()
    assert len(pairs) == 2
    for name, caption in (("p0.png", "a red thing"), ("p1.png", "a blue thing")):
        pair = next(r for r in pairs.values() if r.text == caption)
        np.testing.assert_allclose(pair.vector, fused_by_hand(graph, folder / name, caption), atol=1e-6)
    # indexing the same collection with the weighted-sum model of the same weights is refused (exit 5)
    refused = CliRunner().invoke(cli, [*args, "--model", str(summed_dir)], obj=obj)
    assert refused.exit_code == 5 and "pairs made by the model's fused pair encoder" in refused.stderr


def test_similarity_uses_the_fused_encoder(graph_dir: Path, tmp_path: Path) -> None:
    cat = picture(tmp_path / "cat.png", 3)
    items = ["text:a cat", f"image:{cat}", f"pair:{cat}|a cat"]
    obj = cli_obj(tmp_path)
    result = CliRunner().invoke(cli, ["similarity", "--model", str(graph_dir), "--json", *items], obj=obj)
    assert result.exit_code == 0, result.output
    model = crossmodal.load_model(graph_dir, families=REGISTRY)
    vectors = np.stack([model.embed_texts(["a cat"])[0], model.embed_images([cat])[0],
                        fused_by_hand(model, cat, "a cat")])
    np.testing.assert_allclose(np.array(json.loads(result.stdout)["matrix"]), vectors @ vectors.T, atol=1e-5)
    weighted = CliRunner().invoke(cli, ["similarity", "--model", str(graph_dir), "--image-weight", "0.3", *items],
                                  obj=obj)
    assert weighted.exit_code == 2 and "image_weight does not apply" in weighted.stderr


def test_http_pair_items_and_collections(graph_dir: Path, summed_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from .server.helpers import client_for, data_url, error_code

    graph = crossmodal.load_model(graph_dir, families=REGISTRY)
    summed = crossmodal.load_model(summed_dir, families=REGISTRY)
    cat = picture(tmp_path / "cat.png", 4)
    part = {"type": "image_url", "image_url": {"url": data_url(cat.read_bytes())}}
    store = crossmodal.open_store("memory://")
    store.collection("made-by-sum", model=summed).add_texts(["a cat"])
    with client_for(graph, store=store) as client:
        body = client.post("/v1/embeddings", json={"input": [[part, {"type": "text", "text": "a cat"}]]}).json()
        np.testing.assert_allclose(body["data"][0]["embedding"], fused_by_hand(graph, cat, "a cat"), atol=1e-6)
        weighted = client.post("/v1/embeddings", json={"input": [[part, {"type": "text", "text": "a cat"}]],
                                                       "image_weight": 0.3})
        assert weighted.status_code == 422 and "image_weight does not apply" in weighted.json()["error"]["message"]
        listed = client.get("/v1/collections").json()["data"]
        assert [c["searchable"] for c in listed if c["name"] == "made-by-sum"] == [False]
        search = client.post("/v1/collections/made-by-sum/search", json={"text": "a cat"})
    assert search.status_code == 422 and error_code(search) == "space_mismatch"
    assert "makes pairs by the model's fused pair encoder" in search.json()["error"]["message"]
