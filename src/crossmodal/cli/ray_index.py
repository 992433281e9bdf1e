"""``crossmodal index --ray [ADDRESS]``: the index command's distributed path (see crossmodal.distributed).

``--ray`` alone (or ``--ray=local``) starts Ray on this machine; ``--ray=auto``
joins the cluster this machine is part of; ``--ray=ray://HEAD:10001`` connects
to a remote cluster as a Ray client. Written without ``=``, ``--ray`` takes
the next word as the address unless that word is an existing file or folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import click

from ..errors import InputError
from .options import settings
from .output import json_line, printable

if TYPE_CHECKING:
    from ..ingest.options import IngestOptions

__all__ = ["echo_failed", "fail_if_any", "ray_option", "run_ray_index"]

_ADDRESS = re.compile(r"^(local|auto|ray://.+|[\w.-]+:\d+)$")


def echo_failed(failed: list[tuple[str, str]], what: str) -> None:
    """List on stderr the ``what`` (files, inputs) an index run could not index, and why (names escaped)."""
    if failed:
        click.echo(f"{len(failed)} {what} could not be indexed:", err=True)
        for where, reason in failed:
            click.echo(printable(f"  {where}: {reason}"), err=True)


def fail_if_any(failed: list[tuple[str, str]]) -> None:
    """End an index run that could not index everything with the input error's exit status (3)."""
    if failed:
        raise InputError(f"{len(failed)} of the files could not be indexed; the rest were stored")


def ray_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
        help="Embed on Ray Data: decoding on CPU tasks, the model on actors (GPUs when the cluster has them), "
             "writes to a server store (postgresql:// or qdrant://). ADDRESS: local (default), auto, "
             "ray://HEAD:10001. Inputs may also be CSV/Parquet manifests (path or url + metadata columns).")(fn)


def _masked(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def run_ray_index(ctx: click.Context, address: str, paths: tuple[Path, ...], options: IngestOptions, *,
                  collection: str, store: str | None, quiet: bool, as_json: bool, model_opts: dict[str, Any]) -> None:
    """Run ``crossmodal index`` on Ray and print its report like the single-machine command does."""
    from ..distributed import RayOptions, check_server_store, ray_ingest
    from ..loader import LoadOptions
    from ..store import open_store

    if not _ADDRESS.match(address) and Path(address).expanduser().exists():
        paths, address = (Path(address), *paths), "local"  # `--ray photos/`: a path, not an address
    if options.prune:
        raise click.UsageError("--prune does not combine with --ray; run `crossmodal index --prune PATHS` "
                               "(without --ray) to drop items whose files are gone")
    s = settings(ctx)
    uri = store or s.store
    check_server_store(uri)
    model, mode = model_opts.get("model"), model_opts.get("mode")
    if not model:  # an existing collection keeps the model it was built with, as without --ray
        with open_store(uri) as st:
            info = next((i for i in st.collections() if i.name == collection), None)
        model = (info.model_source or info.space.model) if info is not None else s.model
        mode = mode or (info.space.mode if info is not None else None)
    load = LoadOptions(runtime=model_opts.get("runtime") or s.runtime, mode=mode or s.mode, cache_dir=s.cache_dir,
                       hub_cache=s.hub_cache, offline=bool(model_opts.get("offline")) or s.offline,
                       hub_endpoint=s.hub_endpoint)
    report = ray_ingest(uri, collection, list(paths), model=model, load=load, options=options,
                        ray=RayOptions(address=address, progress=not quiet and not as_json))
    shown = _masked(uri)
    if as_json:
        click.echo(json_line({"collection": collection, "store": shown, "ray": address, **report.to_dict()}))
    else:
        echo_failed(report.failed, "inputs")
        if not quiet:
            click.echo(printable(f"{collection}: {report.summary()} (on Ray, into {shown})"))
    fail_if_any(report.failed)
