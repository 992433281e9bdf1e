"""`crossmodal collections` and `crossmodal store check`."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmodal.cli.main import cli


@pytest.fixture
def env(tmp_path: Path, model_cache: Path, tiny_clip_onnx_dir: Path, images_dir: Path) -> dict[str, str]:
    env = {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(tiny_clip_onnx_dir),
           "CROSSMODAL_STORE": str(tmp_path / "store")}
    for name in ("trips", "notes"):
        result = CliRunner().invoke(cli, ["index", str(images_dir / "st-image-search"), "-c", name, "-q"], env=env)
        assert result.exit_code == 0, result.output
    return env


def run(args: list[str], env: dict[str, str], code: int = 0, input: str | None = None):  # noqa: A002
    result = CliRunner().invoke(cli, args, env=env, input=input, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_list_and_info(env, images_dir: Path) -> None:
    rows = [json.loads(line) for line in run(["collections", "list", "--json"], env).stdout.splitlines()]
    assert [r["name"] for r in rows] == ["notes", "trips"] and rows[0]["count"] == 4
    info = json.loads(run(["collections", "info", "trips", "--json"], env).stdout)
    assert {"name": "trips", "count": 4, "dim": 24}.items() <= info.items() and info["model"]
    assert info["root"] == str((images_dir / "st-image-search").resolve())
    human = run(["collections", "list"], env).stdout
    assert "trips" in human and "notes" in human


def test_info_shows_when_a_collection_was_created_as_a_local_iso_time(env) -> None:
    info = json.loads(run(["collections", "info", "trips", "--json"], env).stdout)
    created = datetime.fromtimestamp(info["created"]).astimezone()
    assert abs(created - datetime.now().astimezone()).total_seconds() < 24 * 3600  # made by the fixture, just now
    assert info["created_iso"] == created.isoformat(timespec="seconds")
    assert datetime.fromisoformat(info["created_iso"]).utcoffset() is not None  # local, with its offset
    lines = dict(line.split(":", 1) for line in run(["collections", "info", "trips"], env).stdout.splitlines())
    assert lines["created"].strip() == info["created_iso"]
    assert "created_iso" not in lines and str(info["created"]) not in lines["created"]


def test_delete_asks_first(env) -> None:
    assert run(["collections", "delete", "notes"], env, code=1, input="n\n").exit_code == 1
    assert "deleted collection 'notes' (4 items)" in run(["collections", "delete", "notes"], env, input="y\n").stdout
    run(["collections", "delete", "trips", "--yes"], env)
    assert "no collections" in run(["collections", "list"], env).stdout
    assert run(["collections", "info", "trips"], env, code=6).exit_code == 6


def test_set_root(env, tmp_path: Path) -> None:
    run(["collections", "set-root", "trips", str(tmp_path)], env)
    assert json.loads(run(["collections", "info", "trips", "--json"], env).stdout)["root"] == str(tmp_path)


def test_store_check_clean_then_repairs_then_reports_damage(env, tmp_path: Path) -> None:
    assert "clean" in run(["store", "check"], env).stdout
    db = sqlite3.connect(tmp_path / "store" / "store.db")
    db.execute("UPDATE counts SET n = 99")
    db.commit()
    repaired = run(["store", "check"], env).stdout
    assert "problem:" in repaired and "repaired:" in repaired
    assert json.loads(run(["store", "check", "--json"], env).stdout)["clean"] is True
    db.execute("UPDATE items SET vector = x'0000'")
    db.commit()
    db.close()
    assert "problems remain" in run(["store", "check"], env, code=6).stderr
