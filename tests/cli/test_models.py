"""`crossmodal models list|info|download|export`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import crossmodal
from crossmodal.cli.main import cli
from crossmodal.models.bge_catalog import BGE_CATALOG
from crossmodal.models.catalog import CATALOG

from ..models.fake_hub import serve


def test_list_shows_the_catalog(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "list", "--json"], env={"CROSSMODAL_CACHE": str(tmp_path)})
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["name"] for r in rows} == set(CATALOG) | {e.name for e in BGE_CATALOG}
    assert {r["family"] for r in rows if r["name"].startswith("BAAI/")} == {"visualized_bge", "bge_m3"}
    default = [r for r in rows if r["default"]]
    assert [r["name"] for r in default] == ["openai/clip-vit-base-patch32"] and default[0]["dim"] == 512
    assert all(not r["cached"] for r in rows)
    table = CliRunner().invoke(cli, ["models", "list"], env={"CROSSMODAL_CACHE": str(tmp_path)}).stdout
    assert "google/siglip-base-patch16-224" in table and "siglip" in table and "BAAI/bge-m3" in table


def _marked(env: dict[str, str]) -> tuple[list[str], str, str]:
    """(names marked in --json, the table's last line, stderr of --json)."""
    as_json = CliRunner().invoke(cli, ["models", "list", "--json"], env=env)
    table = CliRunner().invoke(cli, ["models", "list"], env=env)
    assert as_json.exit_code == 0 and table.exit_code == 0, table.output
    marked = [json.loads(line)["name"] for line in as_json.stdout.splitlines() if json.loads(line)["default"]]
    starred = [line.split()[0] for line in table.stdout.splitlines()[1:-1] if " *" in line]
    assert starred == marked
    return marked, table.stdout.splitlines()[-1], as_json.stderr


def test_list_marks_the_model_in_use(tmp_path: Path, tiny_clip_onnx_dir: Path) -> None:
    env = {"CROSSMODAL_CACHE": str(tmp_path), "CROSSMODAL_MODEL": None}
    assert _marked(env)[:2] == (["openai/clip-vit-base-patch32"], "(* = the default model, used when no model is named)")
    for value in ("google/siglip-base-patch16-224", "hf-hub:google/siglip-base-patch16-224",
                  "Xenova/siglip-base-patch16-224"):
        marked, note, _ = _marked({**env, "CROSSMODAL_MODEL": value})
        assert marked == ["google/siglip-base-patch16-224"], value
        assert note == f"(* = the model in use when none is named: CROSSMODAL_MODEL={value})"
    marked, note, err = _marked({**env, "CROSSMODAL_MODEL": str(tiny_clip_onnx_dir)})
    assert marked == []
    assert note == f"(no mark: the model in use, CROSSMODAL_MODEL={tiny_clip_onnx_dir}, is a directory, not a catalog model)"
    assert err.strip() == note
    marked, note, _ = _marked({**env, "CROSSMODAL_MODEL": "bge-m3"})
    assert marked == ["BAAI/bge-m3"] and note == "(* = the model in use when none is named: CROSSMODAL_MODEL=bge-m3)"
    marked, note, _ = _marked({**env, "CROSSMODAL_MODEL": str(tmp_path / "gone")})
    assert marked == [] and "is neither a catalog name nor an existing directory" in note


def test_info_describes_catalog_entries_and_directories(tiny_siglip_onnx_dir: Path) -> None:
    info = json.loads(CliRunner().invoke(cli, ["models", "info", "google/siglip-base-patch16-224"]).stdout)
    assert info["family"] == "siglip" and info["dim"] == 768
    assert info["text"]["padding"] == "max_length" and info["text"]["context_length"] == 64
    assert info["image"]["resize"] == "squash"
    local = json.loads(CliRunner().invoke(cli, ["models", "info", str(tiny_siglip_onnx_dir)]).stdout)
    assert local["layout"] == "onnx" and local["family"] == "siglip" and local["weights"].startswith("sha256:")


def test_download_fetches_into_the_cache(tiny_clip_onnx_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_clip_onnx_dir, repo)
    env = {"CROSSMODAL_CACHE": str(tmp_path / "cache")}
    with serve({"acme/tiny": repo}) as hub:
        env["CROSSMODAL_HUB_ENDPOINT"] = hub.url
        result = CliRunner().invoke(cli, ["models", "download", "hf-hub:acme/tiny"], env=env)
    assert result.exit_code == 0, result.output
    snapshot = Path(result.stdout.split("onnx: ", 1)[1].strip())
    assert (snapshot / "onnx" / "vision_model.onnx").is_file()
    model = crossmodal.load_model("hf-hub:acme/tiny", cache_dir=tmp_path / "cache", offline=True)
    assert model.dim == 24


def test_export_checks_itself_before_reporting_success(tiny_chinese_clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    result = CliRunner().invoke(cli, ["models", "export", str(tiny_chinese_clip_dir), str(out)])
    assert result.exit_code == 0, result.output
    assert "checked against the source" in result.stdout
    assert {"onnx", "tokenizer.json", "preprocessor_config.json", "config.json", "crossmodal.json"} <= {p.name for p in out.iterdir()}
    onnx = crossmodal.load_model(out)
    torch_model = crossmodal.load_model(tiny_chinese_clip_dir, runtime="torch")
    assert onnx.space == torch_model.space
    assert np.abs(onnx.embed_texts(["一条龙"]) - torch_model.embed_texts(["一条龙"])).max() <= 1e-6
    # An impossible tolerance fails the check: an error, and nothing is left behind.
    strict = tmp_path / "strict"
    result = CliRunner().invoke(cli, ["models", "export", str(tiny_chinese_clip_dir), str(strict), "--atol", "1e-30"])
    assert result.exit_code == 4 and "disagrees with its source" in result.stderr
    assert not strict.exists() and not list(tmp_path.glob(".export-*"))
    # Refuses to clobber an existing export unless asked.
    result = CliRunner().invoke(cli, ["models", "export", str(tiny_chinese_clip_dir), str(out)])
    assert result.exit_code != 0 and "--overwrite" in result.stderr
