"""Entry point: ``crossmodal``. Each command group lives in its own module and is registered here."""

from __future__ import annotations

import click

from .. import __version__
from ..settings import Settings
from .errors import CrossmodalGroup
from .options import CliContext

__all__ = ["cli", "main"]


@click.group(cls=CrossmodalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crossmodal")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Text, images and image+text pairs in one vector space: embed, index, search."""
    if not isinstance(ctx.obj, (Settings, CliContext)):
        ctx.obj = Settings.from_env()


def _register() -> None:
    from .collections import collections
    from .embed import embed, similarity
    from .eval import eval_group
    from .index import index
    from .models import models
    from .search import search
    from .serve import serve
    from .store import store

    for command in (models, embed, similarity, index, search, collections, store, serve, eval_group):
        cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="crossmodal")


if __name__ == "__main__":  # pragma: no cover
    main()
