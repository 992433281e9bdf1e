"""The docs describe the CLI that exists: docs/cli.md is current, and every command the docs run is a real one."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import click
import pytest

from crossmodal.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_cli_reference_is_generated_from_the_current_cli() -> None:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == gen.render(), \
        "docs/cli.md is stale: run python scripts/gen_cli_docs.py"


def _commands_in_docs() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        if doc.name == "cli.md":
            continue
        for block in re.findall(r"```(?:bash|console|sh|shell)\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            for line in block.splitlines():
                for part in re.split(r"&&|;|\|", line.removeprefix("$ ")):
                    words = part.strip().split()
                    while words and "=" in words[0]:  # VAR=value crossmodal ...
                        words = words[1:]
                    if words[:1] == ["crossmodal"]:
                        found.append((doc.name, " ".join(words)))
    return found


COMMANDS = _commands_in_docs()


def test_the_docs_run_commands() -> None:
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize(("doc", "line"), COMMANDS, ids=[f"{d}:{line[:60]}" for d, line in COMMANDS])
def test_every_documented_command_and_option_exists(doc: str, line: str) -> None:
    try:
        args = shlex.split(line.split("#")[0])[1:]
    except ValueError:  # an unbalanced quote cut by the split on ';'/'|': check the leading words only
        args = line.split()[1:2]
    command: click.Command = cli
    ctx = click.Context(cli)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"{doc}: `{line}` runs an unknown command {args[0]!r}"
        command, args = sub, args[1:]
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    if command.context_settings.get("ignore_unknown_options"):  # `embed` reads its inputs from the raw arguments
        known |= {"--text", "--image"}
    for arg in args:
        name = arg.split("=", 1)[0]
        if name.startswith("--"):
            assert name in known, f"{doc}: `{line}` uses {name}, which `{command.name}` does not have"


#: phrases that only make sense to someone who knows how the project was built
UNFOLLOWABLE = re.compile(r"\bseeds? \d|\bissues? \d|\bexperiment of\b|\b(?:this|the) task\b|\bhelpers?\b", re.I)


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_the_docs_refer_to_nothing_a_user_cannot_follow(doc: Path) -> None:
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        found = UNFOLLOWABLE.search(line)
        assert found is None, f"{doc.name}:{number} says {found.group(0)!r}: {line.strip()}"
