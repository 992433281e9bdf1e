"""`crossmodal embed --output sparse|multivector`: a model's extra text outputs, as JSON and as .npz arrays."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import crossmodal
from crossmodal.cli.main import cli
from crossmodal.cli.options import CliContext
from crossmodal.settings import Settings
from crossmodal.testing.outputs_family import OUTPUTS_DENSE_ONLY, build_outputs_model, outputs_registry, token_vector

REGISTRY = outputs_registry()
TEXTS = ["red red circle", "a cat", "一条 龙 龙"]


def word_id(word: str) -> int:
    return 2 + zlib.crc32(word.encode()) % (1 << 20)  # the fake tokenizer's ids


@pytest.fixture
def obj(tmp_path: Path) -> CliContext:
    return CliContext(Settings.from_env({"CROSSMODAL_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}), REGISTRY)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return build_outputs_model(tmp_path / "outputs", seed=2)


def invoke(obj: CliContext, args: list[str]) -> Result:
    return CliRunner().invoke(cli, args, obj=obj)


def text_args(texts: list[str]) -> list[str]:
    return [a for t in texts for a in ("--text", t)]


def test_sparse_as_json_and_npz(obj: CliContext, model_dir: Path, tmp_path: Path) -> None:
    args = ["embed", "--model", str(model_dir), "--output", "sparse", *text_args(TEXTS)]
    result = invoke(obj, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["output"] == "sparse" and [d["kind"] for d in doc["data"]] == ["text"] * 3
    # worked out by hand: each distinct word's id, ascending, with how often it occurs
    red, circle = word_id("red"), word_id("circle")
    assert doc["data"][0]["sparse"] == {"indices": sorted([red, circle]),
                                        "values": [2.0 if i == red else 1.0 for i in sorted([red, circle])]}
    long = word_id("龙")
    assert dict(zip(doc["data"][2]["sparse"]["indices"], doc["data"][2]["sparse"]["values"]))[long] == 2.0
    assert "embedding" not in doc["data"][0]

    out = tmp_path / "sparse.npz"
    assert invoke(obj, [*args, "--format", "npy", "-o", str(out)]).exit_code == 0
    with np.load(out) as npz:
        assert sorted(npz.files) == ["indices", "offsets", "values"]
        assert npz["indices"].dtype == np.int64 and npz["values"].dtype == np.float32
        offsets = npz["offsets"].tolist()
        assert offsets[0] == 0 and len(offsets) == 4
        for i, item in enumerate(doc["data"]):
            assert npz["indices"][offsets[i]:offsets[i + 1]].tolist() == item["sparse"]["indices"]
            assert npz["values"][offsets[i]:offsets[i + 1]].tolist() == item["sparse"]["values"]


def test_multivector_as_json_and_npz(obj: CliContext, model_dir: Path, tmp_path: Path) -> None:
    args = ["embed", "--model", str(model_dir), "--output", "multivector", *text_args(TEXTS)]
    result = invoke(obj, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    expected = [np.stack([token_vector(word_id(w)) for w in t.lower().split()]) for t in TEXTS]
    for item, want in zip(data, expected):
        np.testing.assert_allclose(np.array(item["multivector"], dtype=np.float32), want, atol=1e-7)

    buf = invoke(obj, [*args, "--format", "npy"]).stdout_bytes
    with np.load(io.BytesIO(buf)) as npz:
        assert sorted(npz.files) == ["offsets", "vectors"]
        assert npz["offsets"].tolist() == [0, 3, 5, 8]
        np.testing.assert_allclose(npz["vectors"], np.concatenate(expected), atol=1e-7)


def test_dense_stays_the_default(obj: CliContext, model_dir: Path) -> None:
    doc = json.loads(invoke(obj, ["embed", "--model", str(model_dir), *text_args(TEXTS)]).stdout)
    assert doc["output"] == "dense"
    model = crossmodal.load_model(model_dir, families=REGISTRY)
    np.testing.assert_allclose(np.array([d["embedding"] for d in doc["data"]]), model.embed_texts(TEXTS), atol=1e-6)
    explicit = json.loads(invoke(obj, ["embed", "--model", str(model_dir), "--output", "dense",
                                       *text_args(TEXTS)]).stdout)
    assert explicit == doc


def test_refusals_say_why(obj: CliContext, model_dir: Path, tmp_path: Path, images_dir: Path) -> None:
    dense_only = build_outputs_model(tmp_path / "dense", family=OUTPUTS_DENSE_ONLY.name)
    result = invoke(obj, ["embed", "--model", str(dense_only), "--output", "multivector", "--text", "a cat"])
    assert result.exit_code == 2 and "gives no multivector output; it gives dense" in result.stderr
    cat = str(images_dir / "formats" / "cat.jpg")
    for inputs, what in ((["--image", cat], "an image"), (["--image", cat, "--text", "a cat"], "image+text pair")):
        result = invoke(obj, ["embed", "--model", str(model_dir), "--output", "sparse", "--text", "a", *inputs])
        assert result.exit_code == 2 and "texts only, but input #1 is" in result.stderr and what in result.stderr
    result = invoke(obj, ["embed", "--model", str(model_dir), "--output", "sparse", "--format", "csv", "--text", "a"])
    assert result.exit_code == 2 and "--format csv holds dense vectors only" in result.stderr
    result = invoke(obj, ["embed", "--model", str(model_dir), "--output", "sparse", "--no-normalize", "--text", "a"])
    assert result.exit_code == 2 and "--no-normalize applies to dense vectors" in result.stderr
    # --output names the output; the file to write is -o/--out
    result = invoke(obj, ["embed", "--model", str(model_dir), "--output", "v.npy", "--text", "a"])
    assert result.exit_code == 2 and "is not one of dense, sparse, multivector; to write to a file, use -o" \
        in result.output
    result = invoke(obj, ["embed", "--model", str(model_dir), "--output", "colbert", "--text", "a"])
    assert result.exit_code == 2 and "'colbert' is not one of dense, sparse, multivector" in result.output
