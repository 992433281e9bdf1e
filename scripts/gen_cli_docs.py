"""Write docs/cli.md from the CLI's own --help texts (run after changing a command).

    python scripts/gen_cli_docs.py          # rewrite docs/cli.md
    python scripts/gen_cli_docs.py --check  # exit 1 if docs/cli.md is stale (the tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from crossmodal.cli.main import cli

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _walk(command: click.Command, path: list[str], parent: click.Context | None = None):
    # Each command's context hangs off its parent's, as when the CLI runs: settings such as the group's
    # help option names (-h, --help) reach the subcommands' help the same way.
    settings = {"terminal_width": 100, **command.context_settings}
    ctx = click.Context(command, info_name=path[-1] if parent else " ".join(path), parent=parent, **settings)
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(ctx)):
            yield from _walk(command.get_command(ctx, name), [*path, name], ctx)


def render() -> str:
    parts = ["# Command line reference\n",
             "Generated from the CLI itself by `python scripts/gen_cli_docs.py`; do not edit by hand.\n"]
    for path, command, ctx in _walk(cli, ["crossmodal"]):
        parts.append(f"## `{' '.join(path)}`\n\n```text\n{command.get_help(ctx)}\n```\n")
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
