"""``crossmodal models``: list, info, download, export, verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .options import families, hub_cache, settings

__all__ = ["models"]


@click.group()
def models() -> None:
    """Browse the model catalog, fetch models, export them to ONNX, verify the fast mode."""


def _cached(repo: str, cache_dir: Path | None) -> bool:
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache_dir) if cache_dir else scan_cache_dir()
    except Exception:
        return False
    return any(r.repo_id == repo for r in info.repos)


def _in_use_note(name: str, entry: Any) -> str:
    """What the list's mark means for the model the commands use when none is named (the setting's value)."""
    from ..models.catalog import DEFAULT_MODEL

    if name == DEFAULT_MODEL:
        return "(* = the default model, used when no model is named)"
    if entry is not None:
        return f"(* = the model in use when none is named: CROSSMODAL_MODEL={name})"
    if Path(name).expanduser().is_dir():
        return f"(no mark: the model in use, CROSSMODAL_MODEL={name}, is a directory, not a catalog model)"
    if name.startswith("hf-hub:"):
        return f"(no mark: the model in use, CROSSMODAL_MODEL={name}, is a hub repo outside the catalog)"
    return f"(no mark: CROSSMODAL_MODEL={name} is neither a catalog name nor an existing directory)"


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model.")
@click.pass_context
def list_models(ctx: click.Context, as_json: bool) -> None:
    """The catalog: name, family, dim and the runtimes each model has.

    The model that commands use when none is named (CROSSMODAL_MODEL, else the
    default) is marked with * ("default": true in --json).
    """
    from ..models.bge_catalog import BGE_CATALOG, find_bge
    from ..models.catalog import CATALOG
    from ..models.registry import find_entry

    s = settings(ctx)
    hub = hub_cache(s)
    in_use: Any = find_entry(s.model.removeprefix("hf-hub:")) or find_bge(s.model.removeprefix("hf-hub:"))
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
            "default": entry is in_use,
            "description": spec.description,
        })
    for bge in BGE_CATALOG:  # BAAI's models: the same files on both runtimes
        rows.append({
            "name": bge.name, "family": bge.family, "dim": bge.dim, "runtimes": ["onnx", "torch"],
            "aliases": list(bge.aliases), "cached": all(_cached(r.repo, hub) for r in bge.repos()),
            "default": bge is in_use, "description": bge.description,
        })
    note = _in_use_note(s.model, in_use)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        if in_use is None:
            click.echo(note, err=True)
        return
    width = max(len(r["name"]) for r in rows)
    click.echo(f"{'NAME':<{width}}  {'FAMILY':<15} {'DIM':>4}  {'RUNTIMES':<11} CACHED  DESCRIPTION")
    for r in rows:
        mark = "*" if r["default"] else " "
        click.echo(
            f"{r['name']:<{width}}  {r['family']:<15} {r['dim']:>4}  {','.join(r['runtimes']):<11} "
            f"{'yes' if r['cached'] else 'no':<6}  {mark}{r['description']}"
        )
    click.echo(note)


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
        resolved = resolve(name, families=families(ctx), runtime=runtime, cache_dir=hub_cache(s), offline=True)
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
        resolved = resolve(name, families=families(ctx), runtime=rt, cache_dir=hub, offline=s.offline,
                           endpoint=s.hub_endpoint)
        click.echo(f"{rt}: {resolved.files.root}")
        if mode == "fast" and rt == "onnx":
            from ..loader import load_model

            load_model(name, options=s.load_options(runtime="onnx", mode="fast", offline=True), families=families(ctx))
            click.echo("onnx: int8 graphs ready")


@models.command("export")
@click.argument("src")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--atol", type=float, default=1e-5, show_default=True, help="Largest allowed difference from the source.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.pass_context
def export(ctx: click.Context, src: str, out: Path, atol: float, overwrite: bool) -> None:
    """Export a model (directory or catalog/hub name) to its ONNX layout in OUT.

    The export is run against its source on the same inputs and only written
    when every graph agrees within --atol.
    """
    from ..families import export_onnx, export_resolved
    from ..models.registry import resolve

    path = Path(src).expanduser()
    if path.is_dir():
        report = export_onnx(path, out, atol=atol, overwrite=overwrite, families=families(ctx))
    else:
        s = settings(ctx)
        resolved = resolve(src, families=families(ctx), runtime="torch", cache_dir=hub_cache(s), offline=s.offline,
                           endpoint=s.hub_endpoint)
        report = export_resolved(resolved, out, atol=atol, overwrite=overwrite, families=families(ctx))
    diffs = ", ".join(f"{name} {diff:.2e}" for name, diff in report.diffs.items())
    click.echo(f"exported {src} -> {report.out_dir}\nchecked against the source: max |diff| {diffs} (<= {atol:.0e})")


@models.command("verify")
@click.argument("name")
@click.option("--mode", type=click.Choice(["fast"]), default="fast", show_default=True, help="The mode to check against exact.")
@click.option("--runtime", type=click.Choice(["onnx", "torch"]), default="onnx", show_default=True)
@click.option("--images", "images_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="A photo or a folder of photos (searched recursively) [default: generated pictures].")
@click.option("--texts", "texts_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A text file with one caption per line [default: generated captions].")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Neighbours compared per query.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Inference threads (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def verify(ctx: click.Context, name: str, mode: str, runtime: str, images_path: Path | None, texts_path: Path | None,
           k: int, threads: int | None, as_json: bool) -> None:
    """Check that NAME in --mode stays close to exact: per-item cosine >= 0.99 and top-k overlap >= 0.9.

    Exits with status 1 when a bound is not met.
    """
    from ..fidelity import images_in, verify_model

    s = settings(ctx)
    images = images_in(images_path) if images_path is not None else None
    texts = None
    if texts_path is not None:
        texts = [line.strip() for line in texts_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    report = verify_model(name, mode=mode, images=images, texts=texts, k=k,
                          options=s.load_options(runtime=runtime, threads=threads), families=families(ctx))
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        click.echo("\n".join(report.lines()))
    if not report.passed:
        ctx.exit(1)
