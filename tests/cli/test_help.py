"""Every command's help speaks to the user: examples say what they show, and nothing refers to material a
user of crossmodal cannot see (the project's own notes, numbered work items, ...)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest

from crossmodal.cli.main import cli

#: phrases that only make sense to someone who knows how the project was built
UNFOLLOWABLE = re.compile(r"\bseeds? \d|\bissues? \d|\bexperiment of\b|\b(?:this|the) task\b|\bhelpers?\b", re.I)


def _commands(command: click.Command, path: list[str], parent: click.Context | None = None
              ) -> Iterator[tuple[str, str]]:
    # As when the CLI runs: a subcommand's context hangs off its parent's (so -h reaches every command's help).
    ctx = click.Context(command, info_name=path[-1], parent=parent, **command.context_settings)
    yield " ".join(path), command.get_help(ctx)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            yield from _commands(command.get_command(ctx, name), [*path, name], ctx)


HELP = dict(_commands(cli, ["crossmodal"]))


@pytest.mark.parametrize("path", sorted(HELP))
def test_help_refers_to_nothing_a_user_cannot_follow(path: str) -> None:
    found = UNFOLLOWABLE.search(HELP[path])
    assert found is None, f"`{path} --help` says {found.group(0)!r}"


def test_the_similarity_example_says_what_it_shows() -> None:
    text = HELP["crossmodal similarity"]
    assert "Example: how close a caption, a picture and the picture+caption pair are" in text
    assert 'crossmodal similarity "text:a dragon" image:dragon.png "pair:dragon.png|a dragon"' in text
