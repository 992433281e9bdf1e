"""`crossmodal search`: text, image, pair and like queries, filters, human and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmodal.cli.main import cli


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, tiny_clip_onnx_dir: Path,
        images_dir: Path) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli-search")
    (tmp / "meta.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"file": "formats/cat.jpg", "album": "2024", "year": 2024},
        {"file": "formats/bee.jpg", "album": "2023", "year": 2023},
    ]))
    env = {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(tiny_clip_onnx_dir),
           "CROSSMODAL_STORE": str(tmp / "store")}
    result = CliRunner().invoke(cli, ["index", str(images_dir), "--captions",
                                      str(images_dir / "captioned" / "captions.tsv"), "--metadata",
                                      str(tmp / "meta.jsonl"), "-q"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return env


def run(args: list[str], env: dict[str, str], code: int = 0):
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def hits(args: list[str], env: dict[str, str]) -> list[dict]:
    return [json.loads(line) for line in run([*args, "--json"], env).stdout.splitlines()]


def test_text_search_human_output_shows_score_modality_reference(env) -> None:
    out = run(["search", "a photo of cat", "-k", "3"], env).stdout.splitlines()
    assert len(out) == 3
    rank, score, modality, *rest = out[0].split()
    assert rank == "1" and 0 < float(score) <= 1 and modality in ("image", "text", "pair") and rest


def test_json_hits_and_modality(env, images_dir: Path) -> None:
    found = hits(["search", "--image", str(images_dir / "formats" / "cat.jpg"), "--modality", "image", "-k", "2"], env)
    assert {h["reference"] for h in found} == {"formats/cat.jpg", "captioned/images/rclip_cat.png"}
    assert {"id", "score", "modality", "reference", "metadata", "path"} <= set(found[0])
    assert found[0]["score"] == pytest.approx(1.0, abs=1e-4)
    texts = hits(["search", "--image", str(images_dir / "formats" / "cat.jpg"), "--modality", "text"], env)
    assert len(texts) == 10 and {h["modality"] for h in texts} == {"text"}


def test_pair_query(env, images_dir: Path) -> None:
    bee = images_dir / "captioned" / "images" / "rclip_bee.png"
    found = hits(["search", "--image", str(bee), "--text", "a photo of bee", "--modality", "pair", "-k", "1"], env)
    assert found[0]["reference"] == "captioned/images/rclip_bee.png" and found[0]["text"] == "a photo of bee"
    assert found[0]["score"] == pytest.approx(1.0, abs=1e-4)  # the same pair the index holds


def test_where_filters(env) -> None:
    assert [h["reference"] for h in hits(["search", "anything", "--where", "album=2024"], env)] == ["formats/cat.jpg"]
    assert [h["reference"] for h in hits(["search", "x", "--where", "year>=2020", "--where", "year<2024"], env)] == \
        ["formats/bee.jpg"]
    both = hits(["search", "x", "--where", "album=[2023,2024]"], env)
    assert {h["reference"] for h in both} == {"formats/cat.jpg", "formats/bee.jpg"}
    assert hits(["search", "x", "--filter", '{"year": {"$gt": 2030}}'], env) == []


def test_like(env) -> None:
    first = hits(["search", "a rocket standing on a launchpad", "--modality", "text", "-k", "1"], env)[0]
    similar = hits(["search", "--like", first["id"], "-k", "3"], env)
    assert len(similar) == 3 and first["id"] not in {h["id"] for h in similar}


def test_errors_are_clear(env, tmp_path: Path) -> None:
    assert "nothing to search for" in run(["search"], env, code=2).stderr
    missing = run(["search", "x", "--collection", "nope"], env, code=6)
    assert "no collection 'nope'" in missing.stderr and "default" in missing.stderr
    empty = run(["search", "x"], {**env, "CROSSMODAL_STORE": str(tmp_path / "empty")}, code=6)
    assert "crossmodal index" in empty.stderr
    assert "--where" in run(["search", "x", "--where", "justakey"], env, code=2).stderr


def test_filters_past_the_store_limits_are_usage_errors(env) -> None:
    deep: dict = {"album": "2024"}
    for _ in range(20):
        deep = {"$and": [deep, {"year": {"$gt": 0}}]}
    for args, message in [
        (["--filter", json.dumps(deep)], "nested more than"),
        (["--where", "year=99999999999999999999"], "does not fit in 64 bits"),
        ([arg for i in range(300) for arg in ("--where", f"k{i}=x")], "conditions; the limit is"),
    ]:
        result = run(["search", "x", *args], env, code=2)
        assert message in result.stderr and "Traceback" not in result.output + result.stderr


@pytest.mark.parametrize("expr", ["year>>2020", "year>=abc"])
def test_a_malformed_where_is_a_usage_error_not_an_empty_result(env, expr: str) -> None:
    result = run(["search", "x", "--where", expr], env, code=2)
    assert f"--where {expr!r}" in result.stderr and "accepted forms: key=value" in result.stderr
    assert "no results" not in result.stderr and result.stdout == ""


def test_the_help_documents_the_where_grammar() -> None:
    text = CliRunner().invoke(cli, ["search", "--help"]).stdout
    for form in ("key=value", "key!=value", "key=[a,b]", "key>=n", 'key="text"', "ISO date", "Any other form is an error"):
        assert form in text, form


def test_a_query_over_the_context_length_is_cut_and_said_so(env) -> None:
    long = " ".join(["a photo of a cat sitting on a mat"] * 20)
    result = run(["search", long, "-k", "1"], env)
    assert "note: the text of the query is over the model's context length of 77 tokens and was cut to fit" \
        in result.stderr
    assert "note:" not in run(["search", "a photo of cat", "-k", "1"], env).stderr


def test_keyword_search_finds_a_file_name_word(env) -> None:
    found = hits(["search", "kookaburras", "--using", "keyword", "--modality", "image", "-k", "3"], env)
    assert [h["reference"] for h in found] == ["formats/kookaburras.pnm"]
    assert set(found[0]["signals"]) == {"keyword"} and found[0]["score"] == found[0]["signals"]["keyword"]


def test_hybrid_search_says_which_signals_found_each_hit_and_highlights_words(env) -> None:
    found = hits(["search", "astronaut", "--using", "hybrid", "--modality", "text", "-k", "3"], env)
    top = found[0]
    assert "astronaut" in top["text"] and set(top["signals"]) == {"dense", "keyword"}
    start, end = top["highlights"][0]
    assert top["text"][start:end] == "astronaut"
    human = run(["search", "astronaut", "--using", "hybrid", "-k", "1"], env).stdout
    assert "[dense " in human and "keyword " in human


@pytest.mark.parametrize(("args", "says"), [
    (["--using", "sparse"], "sparse output"),
    (["--rerank", "multivector"], "multi-vector output"),
    (["--using", "keyword", "--rerank", "multivector"], "multi-vector output"),
])
def test_sparse_and_rerank_name_the_missing_model_output(env, args, says) -> None:
    result = CliRunner().invoke(cli, ["search", "astronaut", *args], env=env)
    assert result.exit_code == 2 and says in result.output
    assert "Traceback" not in result.output
