"""``crossmodal index``: folders of images and text files -> a collection."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from .collections import collection_for, collection_option
from .options import model_options, open_store_from_options, pop_model_options, store_option
from .output import json_line, printable
from .ray_index import echo_failed, fail_if_any, ray_option, run_ray_index

__all__ = ["ByteSize", "index"]

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class ByteSize(click.ParamType):
    """A size in bytes: 1000, 64K, 512M, 2G (powers of 1024; an optional trailing B or iB)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(value).lower())
        if m is None or float(m.group(1)) * _UNITS[m.group(2)] < 1:
            self.fail(f"{value!r} is not a size: give bytes, or a number with K, M, G or T (512M, 2G)", param, ctx)
        return int(float(m.group(1)) * _UNITS[m.group(2)])


class _Bar:
    """A tqdm bar (rate and ETA) on stderr, created when the amount of work is known; silent when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="item", desc="embedding", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@collection_option
@store_option
@model_options
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Descend into sub-folders.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching GLOB (path or name); repeatable.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files and folders matching GLOB; repeatable.")
@click.option("--captions", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="TSV/CSV/JSONL of file + caption: adds a caption (text) and an image+caption (pair) item per row.")
@click.option("--metadata", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="TSV/CSV/JSONL of file + metadata columns, attached to the file's items (for --where).")
@click.option("--lines", is_flag=True, help="One text item per non-empty line of .txt/.md files (default: per file).")
@click.option("--prune", is_flag=True, help="Delete items whose files are gone from the folders indexed; with "
              "--captions/--metadata, files those do not list lose their captions/metadata.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Image decoding workers (default: chosen from the cores; 0 = decode inline).")
@click.option("--processes", is_flag=True, help="Decode on worker processes instead of threads.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Items per inference batch and commit.")
@click.option("--max-file-size", type=ByteSize(), default="512M", show_default=True, metavar="SIZE",
              help="Larger files are reported as failures, not read (bytes, or 64K, 512M, 2G).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@ray_option
@click.pass_context
def index(ctx: click.Context, paths: tuple[Path, ...], collection: str, store: str | None, recursive: bool,
          include: tuple[str, ...], exclude: tuple[str, ...], captions: Path | None, metadata: Path | None,
          lines: bool, prune: bool, workers: int | None, processes: bool, batch_size: int | None, max_file_size: int,
          quiet: bool, as_json: bool, **kwargs: Any) -> None:
    """Index image and text files under PATHS into a collection; only what changed is embedded again.

    \b
    Images: every format Pillow opens. Texts: .txt and .md files (one item each, or one per line with --lines).
    A rerun skips unchanged files (same size and mtime, else same content), re-embeds changed ones,
    reuses vectors of moved files, and with --prune drops items whose files are gone.
    Captions and metadata from earlier runs stay unless --captions/--metadata give new ones for the file
    (with --prune, the files given are the whole list). Batches are committed as they finish: an interrupted
    run resumes where it stopped. Only regular files are read (FIFOs, devices and files over
    --max-file-size are reported, like unreadable files and folders).
    \b
    Exit status: 0 when everything was indexed; 3 when some files could not be indexed (they are listed,
    and everything else was stored); 2 for bad options, 4 model, 5 space and 6 store errors.
    \b
    Examples:
      crossmodal index ~/Pictures
      crossmodal index photos/ notes/ --collection trips --captions captions.tsv
      crossmodal index ~/Pictures --prune --exclude '*.gif'
    """
    from ..ingest import IngestOptions, ingest

    options = IngestOptions(recursive=recursive, include=include, exclude=exclude, lines=lines, prune=prune,
                            captions=captions, metadata=metadata, batch_size=batch_size, workers=workers,
                            processes=processes, max_file_size=max_file_size)
    ray_address = kwargs.pop("ray_address", None)
    if ray_address is not None:  # distributed ingest on Ray (cli/ray_index.py)
        return run_ray_index(ctx, ray_address, paths, options, collection=collection, store=store, quiet=quiet,
                             as_json=as_json, model_opts=pop_model_options(kwargs))
    st = open_store_from_options(ctx, store)
    col = collection_for(ctx, st, collection, pop_model_options(kwargs), create=True)
    bar = _Bar(enabled=not quiet and not as_json and sys.stderr.isatty())
    try:
        report = ingest(col, list(paths), options, progress=bar)
    finally:
        bar.close()
    if as_json:
        click.echo(json_line({"collection": col.name, "store": st.uri, **report.to_dict()}))
    else:
        echo_failed(report.failed, "files")
        if not quiet:
            click.echo(printable(f"{col.name}: {report.summary()} ({col.count()} items in {st.uri})"))
    fail_if_any(report.failed)
