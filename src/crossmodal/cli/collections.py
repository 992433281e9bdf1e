"""``crossmodal collections``: list, info, delete, set-root. Also how commands open a collection with its model."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..errors import CollectionNotFound
from .options import load_model_from_options, open_store_from_options, store_option

__all__ = ["collection_for", "collection_option", "collections", "local_time"]


def local_time(seconds: float | None) -> str | None:
    """A time in seconds since the epoch as ISO 8601 in the local time zone (None for an unknown time)."""
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def collection_option(fn: Any) -> Any:
    return click.option("--collection", "-c", "collection", default="default", show_default=True,
                        help="Collection name.")(fn)


def collection_for(ctx: click.Context, store: Any, name: str, model_opts: dict[str, Any], *, create: bool,
                   need_model: bool = True) -> Any:
    """Open collection ``name`` with the right model.

    Without ``--model``, an existing collection is opened with the model it
    was built with (so changing the default model never strands an index);
    a new one is created with ``--model`` or the default model.
    """
    info = next((i for i in store.collections() if i.name == name), None)
    if info is None and not create:
        known = ", ".join(i.name for i in store.collections()) or "none yet; create one with `crossmodal index`"
        raise CollectionNotFound(f"no collection {name!r} in {store.uri} (collections: {known})")
    if not need_model:
        return store.collection(name, create=False)
    opts = dict(model_opts)
    named_by = None
    if info is not None and not opts.get("model"):
        opts["model"] = info.model_source or info.space.model
        opts["mode"] = opts.get("mode") or info.space.mode
        named_by = f"the model collection {name!r} was built with"
    model = load_model_from_options(ctx, named_by=named_by, **opts)
    return store.collection(name, model=model, create=create)


@click.group()
def collections() -> None:
    """List, inspect and delete collections."""


@collections.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per collection.")
@click.pass_context
def list_collections(ctx: click.Context, store: str | None, as_json: bool) -> None:
    """Every collection in the store: name, items, model, dim."""
    st = open_store_from_options(ctx, store)
    rows = []
    for info in st.collections():
        col = st.collection(info.name, create=False)
        rows.append({"name": info.name, "count": col.count(), "model": info.space.model, "dim": info.space.dim,
                     "mode": info.space.mode, "root": info.root})
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"no collections in {st.uri}; create one with `crossmodal index PATH`")
        return
    width = max(4, *(len(r["name"]) for r in rows))
    click.echo(f"{'NAME':<{width}}  {'ITEMS':>8}  {'DIM':>4}  MODEL")
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['count']:>8}  {r['dim']:>4}  {r['model']} ({r['mode']})")


@collections.command("info")
@click.argument("name")
@store_option
@click.option("--json", "as_json", is_flag=True,
              help="Print the description as JSON (created: seconds since the epoch; created_iso: local time).")
@click.pass_context
def info(ctx: click.Context, name: str, store: str | None, as_json: bool) -> None:
    """Counts per modality, model, space, root and creation time of collection NAME."""
    st = open_store_from_options(ctx, store)
    desc = st.collection(name, create=False).describe()
    desc = {**desc, "created_iso": local_time(desc["created"]), "store": st.uri}
    if as_json:
        click.echo(json.dumps(desc, ensure_ascii=False))
        return
    counts = desc.pop("counts")
    desc["created"] = desc.pop("created_iso") or "unknown"
    for key, value in desc.items():
        click.echo(f"{key + ':':<14}{value}")
    click.echo(f"{'items:':<14}" + ", ".join(f"{n} {m}" for m, n in counts.items()))


@collections.command("delete")
@click.argument("name")
@store_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, name: str, store: str | None, yes: bool) -> None:
    """Delete collection NAME and everything in it (files on disk are not touched)."""
    st = open_store_from_options(ctx, store)
    count = st.collection(name, create=False).count()
    if not yes:
        click.confirm(f"delete collection {name!r} with {count} items from {st.uri}?", abort=True)
    st.delete_collection(name)
    click.echo(f"deleted collection {name!r} ({count} items)")


@collections.command("set-root")
@click.argument("name")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@store_option
@click.pass_context
def set_root(ctx: click.Context, name: str, root: Path, store: str | None) -> None:
    """Point NAME's relative image paths at ROOT (after moving the indexed folder)."""
    st = open_store_from_options(ctx, store)
    col = st.collection(name, create=False)
    old = col.root
    col.set_root(root)
    click.echo(f"collection {name!r}: root {old} -> {col.root}")
