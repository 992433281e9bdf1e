"""``crossmodal store check``: verify a store and repair what is derived from it."""

from __future__ import annotations

import json

import click

from ..errors import StoreCorrupt
from .options import open_store_from_options, store_option
from .store_copy import copy

__all__ = ["store"]


@click.group("store")
def store() -> None:
    """Look after a store as a whole."""


@store.command("check")
@store_option
@click.option("--no-repair", is_flag=True, help="Only report; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def check(ctx: click.Context, store: str | None, no_repair: bool, as_json: bool) -> None:
    """Verify integrity (SQLite, counts, filters, vectors) and rebuild derived indexes that lag or disagree.

    Exits 0 when the store is sound (after repairs), 6 when problems remain.
    """
    st = open_store_from_options(ctx, store)
    report = st.check(repair=not no_repair)
    if as_json:
        click.echo(json.dumps({"store": st.uri, **report.to_dict()}, ensure_ascii=False))
    else:
        for label, lines in (("problem", report.problems), ("repaired", report.repairs), ("note", report.notes)):
            for line in lines:
                click.echo(f"{label}: {line}")
        total = sum(report.collections.values())
        state = "clean" if report.clean else ("repaired" if not report.unresolved else "PROBLEMS REMAIN")
        click.echo(f"{st.uri}: {len(report.collections)} collections, {total} items: {state}")
    if report.unresolved:
        raise StoreCorrupt(f"{len(report.unresolved)} problems remain in {st.uri}"
                           + ("; run without --no-repair to fix what can be fixed" if no_repair else ""))


store.add_command(copy)
