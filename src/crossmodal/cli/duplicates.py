"""``crossmodal duplicates``: groups of items with the same content or nearly the same vector."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..duplicates import DEFAULT_THRESHOLD
from .collections import collection_for, collection_option
from .options import open_store_from_options, store_option
from .output import json_line, printable

__all__ = ["duplicates"]


class _Bar:
    """A tqdm bar on stderr, created when the amount of work is known; silent when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="item", desc="comparing", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command()
@collection_option
@store_option
@click.option("--threshold", "-t", type=click.FloatRange(0, 1, min_open=True), default=DEFAULT_THRESHOLD,
              show_default=True, help="Cosine similarity at or above which two items are near-duplicates.")
@click.option("--modality", type=click.Choice(["image", "text", "pair", "all"]), default="all", show_default=True,
              help="Which kind of item to compare (items are compared only with items of their own kind).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per group.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.pass_context
def duplicates(ctx: click.Context, collection: str, store: str | None, threshold: float, modality: str,
               as_json: bool, quiet: bool) -> None:
    """List groups of duplicates: the same content, or nearly the same vector.

    Exact duplicates have the same content; near duplicates a cosine similarity of at least --threshold.
    Each item is compared with its nearest neighbours in the collection's index (no comparison of every
    pair), and items linked through others form one group. Groups are printed largest first, each
    member on its own line.

    \b
    Examples:
      crossmodal duplicates
      crossmodal duplicates -c photos --threshold 0.97 --json
    """
    st = open_store_from_options(ctx, store)
    col = collection_for(ctx, st, collection, {}, create=False, need_model=False)
    bar = _Bar(enabled=not quiet and not as_json and sys.stderr.isatty())
    try:
        groups = col.duplicates(threshold, modality=None if modality == "all" else modality, progress=bar)
    finally:
        bar.close()
    if as_json:
        for g in groups:
            click.echo(json_line(g.to_dict()))
        return
    for number, g in enumerate(groups, start=1):
        how = "same content" if g.kind == "exact" else f"near, cosine >= {g.similarity:.4f}"
        click.echo(f"group {number}: {len(g.ids)} {g.modality} items, {how}")
        for reference in g.references:
            click.echo(printable(f"  {reference}"))
    if not quiet:
        items = sum(len(g.ids) for g in groups)
        click.echo(f"{len(groups)} groups, {items} items ({items - len(groups)} could go)", err=True)
