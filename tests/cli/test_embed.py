"""`crossmodal embed` and `crossmodal similarity` give the library's vectors, in input order."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from crossmodal.cli.main import cli


def run(args: list[str], env: dict[str, str]) -> str:
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def env(model_cache: Path, tiny_clip_onnx_dir: Path) -> dict[str, str]:
    return {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(tiny_clip_onnx_dir)}


def test_embed_writes_one_vector_per_input_in_order(env, tiny_model, images_dir: Path, tmp_path: Path) -> None:
    cat, bee = images_dir / "formats" / "cat.jpg", images_dir / "formats" / "bee.jpg"
    args = ["embed", "--text", "a dog", "--image", str(cat), "--image", str(bee), "--text", "a bee", "--text", "一条龙"]
    doc = json.loads(run(args, env))
    assert [d["kind"] for d in doc["data"]] == ["text", "image", "pair", "text"]
    vectors = np.array([d["embedding"] for d in doc["data"]], dtype=np.float32)
    expected = np.concatenate([
        tiny_model.embed_texts(["a dog"]),
        tiny_model.embed_images([cat]),
        tiny_model.embed_pairs([bee], ["a bee"]),
        tiny_model.embed_texts(["一条龙"]),
    ])
    assert np.abs(vectors - expected).max() <= 1e-6
    assert doc["space"] == tiny_model.space.to_dict()

    run([*args, "--format", "npy", "--output", str(tmp_path / "v.npy")], env)
    assert np.abs(np.load(tmp_path / "v.npy") - expected).max() <= 1e-6

    rows = list(csv.reader(io.StringIO(run([*args, "--format", "csv"], env))))
    assert rows[0][:3] == ["kind", "input", "d0"] and len(rows) == 5
    assert np.abs(np.array([r[2:] for r in rows[1:]], dtype=np.float32) - expected).max() <= 1e-6

    raw = json.loads(run(["embed", "--text", "a dog", "--no-normalize"], env))
    np.testing.assert_allclose(raw["data"][0]["embedding"], tiny_model.embed_texts(["a dog"], normalize=False)[0], atol=1e-6)


def test_similarity_prints_the_cosine_matrix(env, tiny_model, images_dir: Path) -> None:
    cat = images_dir / "formats" / "cat.jpg"
    items = ["text:a cat", f"image:{cat}", f"pair:{cat}|a cat"]
    doc = json.loads(run(["similarity", "--json", *items], env))
    vecs = np.concatenate([tiny_model.embed_texts(["a cat"]), tiny_model.embed_images([cat]),
                           tiny_model.embed_pairs([cat], ["a cat"])])
    assert doc["labels"] == items
    assert np.abs(np.array(doc["matrix"]) - vecs @ vecs.T).max() <= 1e-5
    table = run(["similarity", *items], env)
    assert "text:a cat" in table and "1.0000" in table


def test_bad_inputs_exit_with_a_clear_message(env, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["embed", "--image", str(tmp_path / "nope.jpg")], env=env)
    assert result.exit_code == 3
    assert "error: input #0: image file not found" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(cli, ["embed", "--text", ""], env=env)
    assert result.exit_code == 3 and "empty text" in result.stderr
    result = runner.invoke(cli, ["embed", "--model", "no/such-model", "--text", "x"], env=env)
    assert result.exit_code == 4 and "unknown model 'no/such-model'" in result.stderr
    result = runner.invoke(cli, ["embed"], env=env)
    assert result.exit_code == 2 and "nothing to embed" in result.stderr
    result = runner.invoke(cli, ["similarity", "picture:x.jpg"], env=env)
    assert result.exit_code == 2 and "text:..., image:PATH or pair:PATH|text" in result.stderr
