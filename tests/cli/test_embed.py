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

    run([*args, "--format", "npy", "-o", str(tmp_path / "v.npy")], env)
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


LONG = " ".join(["a very long caption about a dog running on a beach"] * 20)  # ~1,000 characters, ~200 tokens


def test_a_text_over_the_context_length_is_cut_alike_by_the_cli_and_http(env, tiny_model, images_dir: Path) -> None:
    """One rule: cut to fit by default (and said so), refused on request; the CLI and HTTP give the same vector."""
    pytest.importorskip("fastapi")
    from ..server.helpers import client_for, error_code, image_part

    cat = images_dir / "formats" / "cat.jpg"
    result = CliRunner().invoke(cli, ["embed", "--text", "a dog", "--text", LONG, "--image", str(cat), "--text", LONG],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [d["truncated"] for d in doc["data"]] == [False, True, True]
    assert "note: the text of input #1, input #2 are over the model's context length of 77 tokens" in result.stderr
    by_cli = np.array([d["embedding"] for d in doc["data"]], dtype=np.float32)
    with client_for(tiny_model) as client:
        response = client.post("/v1/embeddings", json={"input": [
            "a dog", LONG, [image_part(cat.read_bytes()), {"type": "text", "text": LONG}]]})
        assert response.status_code == 200, response.text
        by_http = np.array([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
        assert [d["truncated"] for d in response.json()["data"]] == [False, True, True]
        refused = client.post("/v1/embeddings", json={"input": ["a dog", LONG], "truncate": False})
    assert np.abs(by_cli - by_http).max() <= 1e-6
    assert np.abs(by_cli[1] - tiny_model.embed_texts([LONG])[0]).max() <= 1e-6  # the library's default, too
    assert refused.status_code == 422 and error_code(refused) == "text_too_long"
    assert "input[1]" in refused.json()["error"]["message"]
    for args in (["embed", "--text", "a dog", "--text", LONG], ["similarity", "text:a dog", f"text:{LONG}"]):
        result = CliRunner().invoke(cli, [*args, "--no-truncate"], env=env)
        assert result.exit_code == 3, result.output
        assert "input #1: text 'a very long caption" in result.stderr
        assert "over the model's context length of 77, and truncation is off" in result.stderr


def test_similarity_says_which_items_were_cut(env) -> None:
    result = CliRunner().invoke(cli, ["similarity", "--json", "text:a dog", f"text:{LONG}"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["truncated"] == [False, True]
    assert "note: the text of item #1 is over the model's context length of 77 tokens and was cut" in result.stderr
    quiet = CliRunner().invoke(cli, ["similarity", "text:a dog", "text:a cat"], env=env)
    assert quiet.exit_code == 0 and quiet.stderr == ""
