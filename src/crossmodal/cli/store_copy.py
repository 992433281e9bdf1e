"""``crossmodal store copy SRC DST``: move collections between stores without re-embedding."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .options import open_store_from_options

__all__ = ["copy"]


class _Bars:
    """One tqdm bar per collection on stderr (only on a terminal, and not with --quiet/--json)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, name: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(name)
        if bar is None:
            from tqdm import tqdm

            bar = self.bars[name] = tqdm(total=total, unit="item", desc=name, file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@click.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option("--collection", "-c", "names", multiple=True, metavar="NAME",
              help="Copy only this collection (repeatable; default: every collection).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Items per read and per atomic write.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def copy(ctx: click.Context, source: str, destination: str, names: tuple[str, ...], batch_size: int, quiet: bool,
         as_json: bool) -> None:
    """Copy collections from store SRC to store DST, vectors included (nothing is embedded again).

    \b
    SRC and DST are store paths or URIs (an embedded store directory, postgresql://..., qdrant://...,
    qdrant+local://PATH). A collection that exists in DST must be in the same embedding space.
    Items keep their ids, so an interrupted copy is resumed by running the same command again.
    \b
    Examples:
      crossmodal store copy ~/.local/share/crossmodal/store postgresql://db/app
      crossmodal store copy postgresql://db/app qdrant://qdrant:6333 --collection photos
    """
    from ..store import copy_collections

    src = open_store_from_options(ctx, source)
    dst = open_store_from_options(ctx, destination)
    bars = _Bars(enabled=not quiet and not as_json and sys.stderr.isatty())
    try:
        report = copy_collections(src, dst, names=names or None, batch_size=batch_size, progress=bars)
    finally:
        bars.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    elif not quiet:
        for c in report.collections:
            extra = f", {c.extra} items only in the destination kept" if c.extra else ""
            made = "created" if c.created else "existing"
            click.echo(f"{c.name}: {c.copied} items copied into the {made} collection in {c.seconds:.1f} s{extra}")
        click.echo(f"{report.copied} items from {report.source} to {report.destination}")
