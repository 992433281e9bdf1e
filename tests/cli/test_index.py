"""`crossmodal index`: folders -> a collection, reporting what it did; reruns embed only what changed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmodal.cli.index import _Bar
from crossmodal.cli.main import cli


@pytest.fixture
def env(tmp_path: Path, model_cache: Path, tiny_clip_onnx_dir: Path) -> dict[str, str]:
    return {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(tiny_clip_onnx_dir),
            "CROSSMODAL_STORE": str(tmp_path / "store")}


@pytest.fixture
def folder(tmp_path: Path, images_dir: Path) -> Path:
    out = tmp_path / "pics"
    out.mkdir()
    for name in ("cat.jpg", "bee.jpg", "tree.webp", "duck.jp2"):
        shutil.copy(images_dir / "formats" / name, out / name)
    (out / "note.txt").write_text("a cat sat on the mat")
    return out


def invoke(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_index_reports_counts_and_reruns_skip_unchanged_files(env, folder: Path) -> None:
    first = invoke(["index", str(folder), "--json"], env)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["files"], report["added"], report["skipped"], report["failed"]) == (5, 5, 0, 0)
    (folder / "bee.jpg").unlink()
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    again = invoke(["index", str(folder), "--prune"], env)
    assert again.exit_code == 3  # a file could not be indexed
    assert "0 added, 0 updated, 4 skipped (unchanged), 1 removed, 1 failed" in again.stdout
    assert "broken.png" in again.stderr and "1 files could not be indexed" in again.stderr
    assert "item/s" not in again.stderr  # not a terminal: no progress bar


def test_an_existing_collection_keeps_its_model(env, folder: Path, tmp_path: Path) -> None:
    assert invoke(["index", str(folder), "-q"], env).exit_code == 0
    other = {**env, "CROSSMODAL_MODEL": "no-such-model"}  # the default changed: the collection still knows its model
    result = invoke(["index", str(folder), "--json"], other)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == 5


def test_a_model_from_another_space_is_refused(env, folder: Path, tiny_siglip_onnx_dir: Path) -> None:
    assert invoke(["index", str(folder), "-q"], env).exit_code == 0
    result = invoke(["index", str(folder), "--model", str(tiny_siglip_onnx_dir)], env)
    assert result.exit_code == 5
    assert "was built in space" in result.stderr and "another" not in result.stdout


def test_progress_bar_shows_rate_and_eta(capsys) -> None:
    bar = _Bar(enabled=True)
    bar(3, 10)
    bar(10, 10)
    bar.close()
    err = capsys.readouterr().err
    assert "10/10" in err and "item/s" in err
    silent = _Bar(enabled=False)
    silent(1, 2)
    assert capsys.readouterr().err == ""


def test_index_exits_with_3_when_files_failed_and_keeps_the_good_ones(env, folder: Path) -> None:
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    result = invoke(["index", str(folder), "--json"], env)
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)  # the JSON report is still exact, on stdout
    assert (report["added"], report["failed"]) == (5, 1)
    assert "1 of the files could not be indexed; the rest were stored" in result.stderr
    alone = invoke(["index", str(folder / "broken.png")], env)  # the only file given failed
    assert alone.exit_code == 3 and "broken.png" in alone.stderr
    assert invoke(["index", str(folder / "cat.jpg"), "-q"], env).exit_code == 0


def test_control_characters_in_names_are_escaped_in_human_output(env, folder: Path) -> None:
    shutil.copy(folder / "cat.jpg", folder / "evil\n  1   1.0000  image  forged.jpg")  # would forge a result line
    (folder / "bad\x1b[2J.png").write_bytes(b"\x89PNG broken")  # would clear the terminal
    human = invoke(["index", str(folder)], env)
    assert "\x1b" not in human.stdout + human.stderr and "bad\\x1b[2J.png" in human.stderr
    assert human.exit_code == 3
    found = invoke(["search", "a cat", "-k", "10"], env).stdout.splitlines()
    assert len(found) == 6 and [int(line.split()[0]) for line in found] == [1, 2, 3, 4, 5, 6]
    assert any(line.endswith("evil\\n  1   1.0000  image  forged.jpg") for line in found)
    exact = [json.loads(line) for line in invoke(["search", "a cat", "-k", "10", "--json"], env).stdout.splitlines()]
    assert "evil\n  1   1.0000  image  forged.jpg" in {h["reference"] for h in exact}  # JSON stays exact


def test_a_file_name_that_is_not_utf8_is_indexed_and_printed(env, folder: Path) -> None:
    raw = os.fsencode(folder) + b"/bad_\xff.jpg"
    shutil.copy(folder / "cat.jpg", os.fsdecode(raw))
    result = invoke(["index", str(folder)], env)
    assert result.exit_code == 0, result.output
    assert "6 added" in result.stdout
    human = invoke(["search", "--image", os.fsdecode(raw), "-k", "2"], env).stdout
    assert "bad_\\xff.jpg" in human
    hits = [json.loads(line) for line in
            invoke(["search", "--image", os.fsdecode(raw), "-k", "6", "--json"], env).stdout.splitlines()]
    assert any(os.fsencode(h["path"]) == raw and os.fsencode(h["reference"]) == b"bad_\xff.jpg" for h in hits)


#: ``crossmodal index`` with the fake model, pausing after its first committed batch until it is killed
_PAUSED_INDEX = """
import sys, time
import crossmodal.cli.collections as collections
import crossmodal.cli.index as index
from crossmodal.testing.fake import fake_model

def paused(self, done, total):
    print("committed", flush=True)
    time.sleep(600)

if __name__ == "__main__":
    collections.load_model_from_options = lambda ctx, **opts: fake_model(dim=16)
    index._Bar.__call__ = paused
    from crossmodal.cli.main import cli
    cli(sys.argv[1:], prog_name="crossmodal")
"""


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, state) of every process, from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(entry.name)] = (int(fields[1]), fields[19], fields[0])
    return out


def _descendants(root: int) -> dict[int, str]:
    procs = _processes()
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, started, _) in procs.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def _alive(pid: int, started: str) -> bool:
    info = _processes().get(pid)
    return info is not None and info[1] == started and info[2] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_decoding_processes_die_with_a_killed_index(tmp_path: Path, images_dir: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "pics"
    folder.mkdir()
    for i, src in enumerate(sorted((images_dir / "formats").glob("*.jpg"))[:6]):
        shutil.copy(src, folder / f"{i}.jpg")
    script = tmp_path / "paused_index.py"
    script.write_text(_PAUSED_INDEX)
    src = str(Path(__file__).parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), "index", str(folder), "--processes", "--workers", "2",
                             "--batch-size", "2", "--store", str(tmp_path / "store")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    children: dict[int, str] = {}
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "committed", proc.stderr.read()  # type: ignore[union-attr]
        children = _descendants(proc.pid)
        assert len(children) >= 2  # the decoding workers (and the helpers that start them)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(p, s) for p, s in children.items()) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p, s in children.items() if _alive(p, s)]
        assert not left, f"processes left behind by a killed index: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid, started in children.items():
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=30)
