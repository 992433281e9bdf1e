"""A family registered from inside the test suite, run through load_model, embed_*, a collection and the CLI.

The whole family is the module-sized block below (``ToyFamily``): its own
directory layout (``toy.json``), spec reading, encoder (arithmetic, with its
own fused pair graph and a sparse output), tokenizer and test-model builder.
Nothing in ``src/`` knows it; it reaches crossmodal only through a
:class:`FamilyRegistry` passed in.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import crossmodal
from crossmodal.cli.main import cli
from crossmodal.cli.options import CliContext
from crossmodal.errors import ExportError, ModelLoadError, UnsupportedInput
from crossmodal.families import FAMILIES, TinyModelOptions
from crossmodal.models.files import ModelFiles, ResolvedModel, read_json
from crossmodal.models.spec import Capabilities, Fusion, ModelSpec
from crossmodal.preprocessing.texts import Tokenizer
from crossmodal.runtimes.base import Encoder, RuntimeOptions, SparseVector, TextOutputs
from crossmodal.settings import Settings
from crossmodal.testing.fake import FakeEncoder, FakeTokenizer, fake_spec

# ---------------------------------------------------------------------------------------------- the family


class ToyEncoder(FakeEncoder):
    """FakeEncoder's towers, plus a fused pair graph (image row minus text row) and sparse word counts."""

    def encode_pairs(self, pixel_values: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.encode_images(pixel_values) - self.encode_texts(inputs)

    def encode_text_outputs(self, inputs: dict[str, np.ndarray], outputs: Collection[str]) -> TextOutputs:
        sparse = []
        for row in inputs["input_ids"]:
            ids, counts = np.unique(row[row > 1], return_counts=True)
            sparse.append(SparseVector(ids.astype(np.int64), counts.astype(np.float32)))
        return TextOutputs(dense=self.encode_texts(inputs), sparse=sparse if "sparse" in outputs else None)


class ToyFamily:
    runtimes = ("onnx",)
    layouts = ("a toy model directory (toy.json)",)

    def __init__(self, name: str, capabilities: Capabilities) -> None:
        self.name = name
        self.capabilities = capabilities

    def detect(self, root: Path) -> ModelFiles | None:
        return ModelFiles(root=root, layout="toy") if (root / "toy.json").is_file() else None

    def claims(self, files: ModelFiles) -> bool:
        return files.layout == "toy" and read_json(files.root / "toy.json").get("family") == self.name

    def read_spec(self, files: ModelFiles, name: str) -> ModelSpec:
        dim = int(read_json(files.root / "toy.json")["dim"])
        return fake_spec(dim, name).with_(family=self.name, fusion=Fusion(kind="graph"), projection="toy")

    def load_encoder(self, resolved: ResolvedModel, runtime: str, options: RuntimeOptions) -> Encoder:
        return ToyEncoder(resolved.spec.dim, seed=int(read_json(resolved.files.root / "toy.json")["seed"]))

    def load_tokenizer(self, resolved: ResolvedModel) -> Tokenizer:
        return FakeTokenizer(resolved.spec.text)

    def export_onnx(self, files: ModelFiles, spec: ModelSpec, out: Path, atol: float) -> dict[str, float]:
        raise ExportError("toy models have no ONNX export")

    def build_test_model(self, out: Path, options: TinyModelOptions) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        dim = options.projection_dim or 16
        (out / "toy.json").write_text(json.dumps({"family": self.name, "dim": dim, "seed": options.seed}))
        return out


TOY = ToyFamily("toy", Capabilities(inputs=("text", "image", "pair"), outputs=("dense", "sparse")))
TOY_TEXT = ToyFamily("toy_text", Capabilities(inputs=("text",), outputs=("dense", "sparse")))
REGISTRY = FAMILIES.with_family(TOY).with_family(TOY_TEXT)

# ---------------------------------------------------------------------------------------------- the tests


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    return TOY.build_test_model(tmp_path / "toy", TinyModelOptions(seed=3))


@pytest.fixture
def toy_text_dir(tmp_path: Path) -> Path:
    return TOY_TEXT.build_test_model(tmp_path / "toy-text", TinyModelOptions())


def test_the_default_registry_does_not_know_the_family(toy_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="none of: a transformers model directory.*toy.json"):
        crossmodal.load_model(toy_dir)
    assert "toy" not in FAMILIES and "toy" in REGISTRY  # registering made a new registry


def test_load_model_and_embed_through_the_family(toy_dir: Path, images_dir: Path) -> None:
    model = crossmodal.load_model(toy_dir, families=REGISTRY)
    assert model.spec.family == "toy" and model.dim == 16
    cat = images_dir / "formats" / "cat.jpg"
    encoder = ToyEncoder(16, seed=3)
    pixels = model.preprocess_image(cat)[None]
    texts = ["a red circle", "a cat"]
    tokens = FakeTokenizer(model.spec.text).tokenize(texts)
    ids = [np.asarray([t.ids], dtype=np.int64) for t in tokens]  # type: ignore[union-attr]
    expected_texts = unit(np.concatenate([encoder.encode_texts({"input_ids": i}) for i in ids]))
    np.testing.assert_allclose(model.embed_texts(texts), expected_texts, atol=1e-6)
    np.testing.assert_allclose(model.embed_images([cat]), unit(encoder.encode_images(pixels)), atol=1e-6)
    # The pair vector is the family's own graph, not the CLIP weighted sum.
    fused = unit(encoder.encode_pairs(pixels, {"input_ids": ids[1]}))
    np.testing.assert_allclose(model.embed_pairs([cat], ["a cat"]), fused, atol=1e-6)
    with pytest.raises(crossmodal.ConfigError, match="image_weight does not apply"):
        model.embed_pairs([cat], ["a cat"], image_weight=0.3)
    # A bad half of a pair fails that pair alone.
    skipped = model.embed_pairs([cat, b"not an image"], ["a cat", "a dog"], on_error="skip")
    assert skipped.indices.tolist() == [0] and skipped.failures[0].index == 1


def test_sparse_outputs_and_missing_modalities(toy_dir: Path, toy_text_dir: Path, images_dir: Path) -> None:
    model = crossmodal.load_model(toy_dir, families=REGISTRY)
    out = model.embed_text_outputs(["red red circle", "a cat"], outputs=("sparse",))
    np.testing.assert_allclose(out.dense, model.embed_texts(["red red circle", "a cat"]), atol=1e-6)
    assert out.sparse is not None and out.multivector is None
    red = 2 + zlib.crc32(b"red") % (1 << 20)
    assert out.sparse[0].as_dict()[red] == 2.0 and len(out.sparse[0].as_dict()) == 2
    with pytest.raises(UnsupportedInput, match="gives no multivector output"):
        model.embed_text_outputs(["a cat"], outputs=("multivector",))
    text_only = crossmodal.load_model(toy_text_dir, families=REGISTRY)
    assert text_only.embed_texts(["a cat"]).shape == (1, 16)
    with pytest.raises(UnsupportedInput, match=r"model '.*toy-text' does not embed images; it embeds texts"):
        text_only.embed_images([images_dir / "formats" / "cat.jpg"])
    with pytest.raises(UnsupportedInput, match="does not embed image\\+text pairs"):
        text_only.embed_pairs([images_dir / "formats" / "cat.jpg"], ["a cat"])


def test_a_collection_over_the_family(toy_dir: Path, images_dir: Path, tmp_path: Path) -> None:
    model = crossmodal.load_model(toy_dir, families=REGISTRY)
    store = crossmodal.open_store(tmp_path / "store")
    try:
        col = store.collection("toys", model=model)
        col.add_texts(["a red circle", "a green square", "two dogs"])
        col.add_pairs([images_dir / "formats" / "cat.jpg"], ["a cat"])
        hits = col.search("a green square", top_k=2)
        assert hits[0].text == "a green square" and hits[0].score == pytest.approx(1.0, abs=1e-5)
        pair = col.search(pair=(images_dir / "formats" / "cat.jpg", "a cat"), top_k=1)
        assert pair[0].modality == "pair" and pair[0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        store.close()


def test_the_cli_with_the_registry_passed_in(toy_dir: Path, toy_text_dir: Path, images_dir: Path, tmp_path: Path) -> None:
    settings = Settings.from_env({"CROSSMODAL_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)})
    obj = CliContext(settings, REGISTRY)
    result = CliRunner().invoke(cli, ["embed", "--model", str(toy_dir), "--text", "a cat"], obj=obj)
    assert result.exit_code == 0, result.output
    row = np.array(json.loads(result.stdout)["data"][0]["embedding"], dtype=np.float32)
    model = crossmodal.load_model(toy_dir, families=REGISTRY)
    np.testing.assert_allclose(row, model.embed_texts(["a cat"])[0], atol=1e-6)
    cat = str(images_dir / "formats" / "cat.jpg")
    refused = CliRunner().invoke(cli, ["embed", "--model", str(toy_text_dir), "--image", cat], obj=obj)
    assert refused.exit_code == 2 and "does not embed images" in refused.output
    unknown = CliRunner().invoke(cli, ["embed", "--model", str(toy_dir), "--text", "a cat"],
                                 obj=CliContext(settings))
    assert unknown.exit_code != 0 and "toy.json" in unknown.output
