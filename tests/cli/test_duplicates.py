"""`crossmodal duplicates` and `search --hide-duplicates` on generated pictures: copies, near copies, others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from crossmodal.cli.main import cli
from crossmodal.store import open_store


def run(args: list[str], env: dict[str, str]):
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, tiny_clip_onnx_dir: Path) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli-duplicates")
    pics = tmp / "pics"
    pics.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        picture = Image.fromarray(blocks).resize((64, 64), Image.NEAREST)
        picture.save(pics / f"p{i}.png")
        if i < 3:  # a near copy: one pixel changed
            pixels = np.asarray(picture).copy()
            pixels[0, 0] = 255 - pixels[0, 0]
            Image.fromarray(pixels).save(pics / f"p{i}-touched.png")
    shutil.copy(pics / "p5.png", pics / "p5-copy.png")  # an exact copy
    env = {"CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_MODEL": str(tiny_clip_onnx_dir),
           "CROSSMODAL_STORE": str(tmp / "store")}
    run(["index", str(pics), "-q"], env)
    return env


def brute_force(env: dict[str, str], threshold: float) -> set[frozenset[str]]:
    st = open_store(env["CROSSMODAL_STORE"])
    items = list(st.collection("default").items(vectors=True))
    st.close()
    x = np.stack([r.vector for r in items])
    sims = x @ x.T
    links = {frozenset((a.reference, b.reference)) for i, a in enumerate(items) for j, b in enumerate(items)
             if i < j and (sims[i, j] >= threshold or a.content_hash == b.content_hash)}
    groups: list[set[str]] = []
    for link in links:
        touching = [g for g in groups if g & link]
        merged = set(link).union(*touching)
        groups = [g for g in groups if not g & link] + [merged]
    return {frozenset(g) for g in groups}


def test_duplicates_lists_the_copies_and_near_copies(env) -> None:
    # (the tiny test model puts all these random pictures within cosine 0.999 of each other, a one-pixel change
    # within 0.9999: the threshold separates them)
    out = run(["duplicates", "--json", "--threshold", "0.999"], env).stdout.splitlines()
    groups = [json.loads(line) for line in out]
    found = {frozenset(i["reference"] for i in g["items"]) for g in groups}
    assert found == brute_force(env, 0.999) and len(found) == 4
    assert frozenset({"p5.png", "p5-copy.png"}) in found
    assert {frozenset({f"p{i}.png", f"p{i}-touched.png"}) for i in range(3)} <= found
    kinds = {frozenset(i["reference"] for i in g["items"]): g["kind"] for g in groups}
    assert kinds[frozenset({"p5.png", "p5-copy.png"})] == "exact"
    assert kinds[frozenset({"p0.png", "p0-touched.png"})] == "near"
    human = run(["duplicates", "-t", "0.999"], env)
    assert "same content" in human.stdout and "  p5-copy.png" in human.stdout
    assert f"{len(groups)} groups" in human.stderr


def test_search_hide_duplicates_shows_one_item_per_group(env) -> None:
    query = Path(env["CROSSMODAL_STORE"]).parent / "pics" / "p0.png"
    every = [json.loads(line) for line in run(["search", "--image", str(query), "-k", "20", "--json"], env)
             .stdout.splitlines()]
    shown = [json.loads(line) for line in run(["search", "--image", str(query), "-k", "20", "--json",
                                               "--hide-duplicates", "--duplicate-threshold", "0.999"], env)
             .stdout.splitlines()]
    assert shown[0]["reference"] == every[0]["reference"] == "p0.png"
    refs = [h["reference"] for h in shown]
    assert "p0-touched.png" not in refs and len([r for r in refs if r.startswith("p5")]) == 1
    assert len(shown) == len(every) - 4  # one of each of the four pairs left out
