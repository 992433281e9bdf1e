"""How every command loads its model and opens its store: errors that say what was asked and the ways out,
and no store left behind by a command that failed before writing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmodal.cli.main import cli

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once


@pytest.fixture
def pictures(tmp_path: Path, images_dir: Path) -> Path:
    out = tmp_path / "Pictures"
    out.mkdir()
    shutil.copy(images_dir / "formats" / "cat.jpg", out / "cat.jpg")
    return out


@pytest.fixture
def fresh(tmp_path: Path) -> dict[str, str | None]:
    """A machine that has never fetched a model, with the hub out of reach and no model configured."""
    return {"CROSSMODAL_STORE": str(tmp_path / "store"), "CROSSMODAL_CACHE": str(tmp_path / "cache"),
            "CROSSMODAL_HUB_ENDPOINT": UNREACHABLE, "CROSSMODAL_MODEL": None, "CROSSMODAL_OFFLINE": None,
            "HF_HUB_OFFLINE": None, "CROSSMODAL_HUB_CACHE": None}


def invoke(args: list[str], env: dict[str, str | None]):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_the_first_index_without_the_hub_names_the_default_model_and_the_ways_out(fresh, pictures: Path,
                                                                                 tmp_path: Path) -> None:
    result = invoke(["index", str(pictures)], fresh)
    assert result.exit_code == 4, result.output
    message = result.stderr
    assert "cannot load the default model openai/clip-vit-base-patch32" in message
    assert "could not be reached" in message and "ConnectionRefused" in message
    assert "-m DIR" in message and "CROSSMODAL_MODEL=DIR" in message
    assert "python -m crossmodal.testing.demo DIR" in message
    assert "crossmodal models download openai/clip-vit-base-patch32" in message
    assert "Xenova" not in message  # the repo carrying the ONNX files is not a name the user ever typed
    assert not (tmp_path / "store").exists(), "a failed first index must not leave a store behind"


def test_the_model_is_named_as_the_user_named_it(fresh, pictures: Path) -> None:
    typed = invoke(["index", str(pictures), "-m", "openai/clip-vit-large-patch14"], fresh)
    assert typed.exit_code == 4 and "cannot load model 'openai/clip-vit-large-patch14':" in typed.stderr
    from_env = invoke(["embed", "--text", "a cat"], {**fresh, "CROSSMODAL_MODEL": "google/siglip-base-patch16-224"})
    assert from_env.exit_code == 4
    assert "cannot load model 'google/siglip-base-patch16-224' (from CROSSMODAL_MODEL)" in from_env.stderr
    offline = invoke(["similarity", "text:a", "text:b", "--offline"], fresh)
    assert offline.exit_code == 4 and "offline mode is on (--offline or CROSSMODAL_OFFLINE=1)" in offline.stderr


@pytest.mark.parametrize("name", ["./models/mine", "../mine", "~/no-such-model-dir", "/no/such/model", "models/a/b",
                                  "mine/"])
def test_a_model_directory_that_does_not_exist_is_named_as_one(fresh, pictures: Path, tmp_path: Path,
                                                                name: str) -> None:
    result = invoke(["index", str(pictures), "-m", name], fresh)
    assert result.exit_code == 4, result.output
    assert f"model directory {name!r} does not exist" in result.stderr
    assert "hf-hub:" not in result.stderr
    assert not (tmp_path / "store").exists()


def test_a_file_is_not_a_model_directory(fresh, pictures: Path) -> None:
    result = invoke(["embed", "--text", "a", "-m", str(pictures / "cat.jpg")], fresh)
    assert result.exit_code == 4 and "is a file, not a model directory" in result.stderr


def test_reading_commands_create_no_store(fresh, tmp_path: Path) -> None:
    assert invoke(["collections", "list"], fresh).exit_code == 0
    assert invoke(["search", "a cat"], fresh).exit_code == 6
    assert invoke(["search", "a cat", "--where", "year>>2020"], fresh).exit_code == 2
    assert invoke(["collections", "info", "default"], fresh).exit_code == 6
    assert not (tmp_path / "store").exists()


def test_a_store_is_created_when_the_first_index_writes(fresh, pictures: Path, tmp_path: Path, model_cache: Path,
                                                        tiny_clip_onnx_dir: Path) -> None:
    env = {**fresh, "CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(tiny_clip_onnx_dir)}
    result = invoke(["index", str(pictures)], env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "store" / "store.db").is_file()
    assert f"in {tmp_path / 'store'}" in result.stdout
