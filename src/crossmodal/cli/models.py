"""``crossmodal models``: list, info, download, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .options import hub_cache, settings

__all__ = ["models"]


@click.group()
def models() -> None:
    """Browse the model catalog, fetch models, export them to ONNX."""


def _cached(repo: str, cache_dir: Path | None) -> bool:
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache_dir) if cache_dir else scan_cache_dir()
    except Exception:
        return False
    return any(r.repo_id == repo for r in info.repos)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model.")
@click.pass_context
def list_models(ctx: click.Context, as_json: bool) -> None:
    """The catalog: name, family, dim and the runtimes each model has."""
    from ..models.catalog import CATALOG

    s = settings(ctx)
    hub = hub_cache(s)
    rows: list[dict[str, Any]] = []
    for name, entry in CATALOG.items():
        spec = entry.spec
        runtimes = [r for r, _ in spec.sources]
        onnx = spec.source("onnx")
        rows.append({
            "name": name,
            "family": spec.family,
            "dim": spec.dim,
            "runtimes": runtimes,
            "aliases": list(entry.aliases),
            "cached": bool(onnx and all(_cached(r, hub) for r in onnx.repos())),
            "default": name == s.model,
            "description": spec.description,
        })
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    width = max(len(r["name"]) for r in rows)
    click.echo(f"{'NAME':<{width}}  {'FAMILY':<12} {'DIM':>4}  {'RUNTIMES':<11} CACHED  DESCRIPTION")
    for r in rows:
        mark = "*" if r["default"] else " "
        click.echo(
            f"{r['name']:<{width}}  {r['family']:<12} {r['dim']:>4}  {','.join(r['runtimes']):<11} "
            f"{'yes' if r['cached'] else 'no':<6}  {mark}{r['description']}"
        )
    click.echo("(* = the default model)")


@models.command("info")
@click.argument("name")
@click.option("--runtime", type=click.Choice(["onnx", "torch"]), default="onnx")
@click.pass_context
def info(ctx: click.Context, name: str, runtime: str) -> None:
    """Everything that decides NAME's vectors, as JSON (catalog entries need no download)."""
    from ..models.registry import find_entry, resolve

    entry = find_entry(name.removeprefix("hf-hub:"))
    out: dict[str, Any]
    if entry is not None:
        out = {**entry.spec.describe(), "weights": entry.weights, "aliases": list(entry.aliases), "origin": "catalog"}
    else:
        s = settings(ctx)
        resolved = resolve(name, runtime=runtime, cache_dir=hub_cache(s), offline=True)
        out = {**resolved.spec.describe(), "weights": resolved.weights, "origin": resolved.origin,
               "layout": resolved.files.layout, "path": str(resolved.files.root)}
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


@models.command("download")
@click.argument("name")
@click.option("--runtime", type=click.Choice(["onnx", "torch", "all"]), default="onnx", help="Which runtime's files to fetch.")
@click.option("--mode", type=click.Choice(["exact", "fast"]), default="exact", help="fast: also build the cached int8 graphs.")
@click.pass_context
def download(ctx: click.Context, name: str, runtime: str, mode: str) -> None:
    """Fetch NAME into the cache so it loads offline afterwards."""
    from ..models.registry import find_entry, resolve

    s = settings(ctx)
    hub = hub_cache(s)
    entry = find_entry(name.removeprefix("hf-hub:"))
    runtimes = [r for r, _ in entry.spec.sources] if entry is not None and runtime == "all" else [runtime]
    if runtime == "all" and entry is None:
        runtimes = ["onnx", "torch"]
    for rt in runtimes:
        resolved = resolve(name, runtime=rt, cache_dir=hub, offline=s.offline, endpoint=s.hub_endpoint)
        click.echo(f"{rt}: {resolved.files.root}")
        if mode == "fast" and rt == "onnx":
            from ..loader import load_model

            load_model(name, runtime="onnx", mode="fast", cache_dir=s.cache_dir, hub_cache=hub, offline=True)
            click.echo("onnx: int8 graphs ready")


@models.command("export")
@click.argument("src")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--atol", type=float, default=1e-5, show_default=True, help="Largest allowed difference from the source.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.pass_context
def export(ctx: click.Context, src: str, out: Path, atol: float, overwrite: bool) -> None:
    """Export a transformers-layout model (directory or catalog/hub name) to the ONNX layout in OUT.

    The export is run against its source on the same inputs and only written
    when both towers agree within --atol.
    """
    from ..models.export import export_onnx
    from ..models.registry import resolve

    path = Path(src).expanduser()
    if not path.is_dir():
        s = settings(ctx)
        path = resolve(src, runtime="torch", cache_dir=hub_cache(s), offline=s.offline, endpoint=s.hub_endpoint).files.root
    report = export_onnx(path, out, atol=atol, overwrite=overwrite)
    click.echo(
        f"exported {src} -> {report.out_dir}\n"
        f"checked against the source: max |diff| image {report.max_abs_diff_image:.2e}, "
        f"text {report.max_abs_diff_text:.2e} (<= {atol:.0e})"
    )
