"""The README's offline quickstart, as a user runs it: demo model and pictures, `crossmodal index`, `crossmodal search`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from crossmodal.cli.main import cli
from crossmodal.testing.demo import make_demo


def test_the_quickstart_finds_the_pictures_a_caption_describes(tmp_path: Path, clip_bpe: bytes, model_cache: Path) -> None:
    demo = make_demo(tmp_path / "demo", bpe=clip_bpe)
    env = {"CROSSMODAL_MODEL": str(demo / "model"), "CROSSMODAL_STORE": str(tmp_path / "store"),
           "CROSSMODAL_CACHE": str(model_cache)}
    runner = CliRunner()
    indexed = runner.invoke(cli, ["index", str(demo / "pictures"), "--json"], env=env, catch_exceptions=False)
    assert indexed.exit_code == 0, indexed.output
    assert json.loads(indexed.stdout)["added"] == 36  # 4 colours x 3 shapes x 3 pictures
    for query in ("a red circle", "a blue triangle", "a yellow square"):
        found = runner.invoke(cli, ["search", query, "-k", "3", "--json"], env=env, catch_exceptions=False)
        assert found.exit_code == 0, found.output
        names = [Path(json.loads(line)["reference"]).name for line in found.stdout.splitlines()]
        # Three pictures of each caption: the top three are the ones it names (chance: 1 in 220).
        assert sum(name.startswith(query.replace(" ", "_")) for name in names) >= 2, (query, names)
