"""``crossmodal eval retrieval`` and ``crossmodal eval zeroshot``: CLIP_benchmark's metrics on your data."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from .options import load_model_from_options, settings

__all__ = ["eval_group"]


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError as exc:
        raise ConfigError(f"--k takes comma-separated positive integers such as 1,5,10, got {text!r}") from exc
    if not ks or min(ks) < 1:
        raise ConfigError(f"--k takes comma-separated positive integers such as 1,5,10, got {text!r}")
    return tuple(sorted(set(ks)))


def _model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    decorators = [
        click.option("--model", "-m", "models", multiple=True,
                     help="Catalog name, hf-hub:ORG/NAME or a directory; repeat to compare models "
                          "[env CROSSMODAL_MODEL]."),
        click.option("--mode", "modes", multiple=True, type=click.Choice(["exact", "fast"]),
                     help="exact: fp32; fast: int8; repeat to compare (--mode exact --mode fast) "
                          "[env CROSSMODAL_MODE; default exact]."),
        click.option("--runtime", type=click.Choice(["onnx", "torch"]), default=None,
                     help="Inference engine [env CROSSMODAL_RUNTIME; default onnx]."),
        click.option("--device", default=None, help="cpu or cuda[:N] (torch runtime)."),
        click.option("--threads", type=click.IntRange(min=1), default=None, help="Inference threads (default: all cores)."),
        click.option("--offline", is_flag=True, default=False, help="Never touch the network; use cached models only."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per model call."),
        click.option("--json", "json_out", default=None, metavar="FILE",
                     help="Write the results as strict JSON (CLIP_benchmark's shape; one object, or a list for "
                          "several models/modes); - prints it instead of the table."),
        click.option("--plot", "plot_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     metavar="FILE.png", help="Draw recall@k curves per model and mode (needs crossmodal[plot])."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    ]
    for deco in reversed(decorators):
        fn = deco(fn)
    return fn


def _runs(ctx: click.Context, opts: dict[str, Any]) -> list[tuple[str, str]]:
    s = settings(ctx)
    models = list(opts["models"]) or [s.model]
    modes = list(opts["modes"]) or [s.mode]
    return [(m, mode) for m in models for mode in modes]


def _load(ctx: click.Context, name: str, mode: str, opts: dict[str, Any]) -> Any:
    return load_model_from_options(ctx, model=name, mode=mode, runtime=opts["runtime"], device=opts["device"],
                                   threads=opts["threads"], offline=opts["offline"])


def _progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def _write_outputs(results: list[Any], json_out: str | None, plot_out: Path | None) -> bool:
    """Write --json and --plot; True when the JSON went to stdout (so the table is not printed)."""
    import json

    from ..eval.results import strict

    if plot_out is not None:
        from ..eval.plots import plot_recall_curves

        plot_recall_curves(results, plot_out)
    if json_out is None:
        return False
    data = results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results]
    text = json.dumps(strict(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if json_out == "-":
        click.echo(text, nl=False)
        return True
    try:
        Path(json_out).expanduser().write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write --json {json_out}: {exc}") from exc
    return False


@click.group("eval")
def eval_group() -> None:
    """Measure retrieval and zero-shot accuracy on your data, with CLIP_benchmark's metrics and formats."""


@eval_group.command("retrieval")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@_model_options
@click.option("--k", "k_text", default="1,5,10", show_default=True, help="The k of recall@k, comma-separated.")
@click.option("--split", default="test", show_default=True, help="The split of a Karpathy JSON or wds/ folder.")
@click.option("--image-root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The folder image paths are relative to [default: the dataset file's folder].")
@click.option("--through-collection", is_flag=True,
              help="Also search through a collection (the store's index and rescoring) and report the recall lost.")
@click.option("--store", default=None, metavar="PATH|URI",
              help="The store for --through-collection [default: a temporary embedded store].")
@click.option("--exact-limit", type=click.IntRange(min=0), default=None,
              help="Embedded store: search exactly up to N items per modality, HNSW above [default 10000].")
@click.option("--filtered", is_flag=True, help="With --through-collection: query with a metadata filter every item "
                                               "passes (the filtered search path).")
@click.pass_context
def retrieval(ctx: click.Context, dataset: Path, k_text: str, split: str, image_root: Path | None,
              through_collection: bool, store: str | None, exact_limit: int | None, filtered: bool,
              **opts: Any) -> None:
    """Text->image and image->text recall@k of each model (and mode) on DATASET.

    DATASET is a Karpathy-style CSV (image,caption; one row per caption), a COCO
    or Karpathy JSON, a crossmodal captions TSV, or a CLIP_benchmark wds/ folder.
    image_retrieval_recall@k (t>i) counts captions whose image is in the top k;
    text_retrieval_recall@k (i>t) counts images with any caption in the top k.

    \b
    Examples:
      crossmodal eval retrieval flickr30k/flickr30k_test_karpathy.txt -m openai/clip-vit-base-patch32
      crossmodal eval retrieval captions.tsv -m MODEL --mode exact --mode fast --plot recall.png
      crossmodal eval retrieval captions.csv -m MODEL --through-collection --exact-limit 100
    """
    from ..eval.harness import check_ks, evaluate_retrieval
    from ..eval.loading import load_retrieval_dataset
    from ..eval.results import format_table

    ks = check_ks(_parse_ks(k_text))
    if (store is not None or exact_limit is not None or filtered) and not through_collection:
        raise ConfigError("--store, --exact-limit and --filtered go with --through-collection")
    data = load_retrieval_dataset(dataset, split=split, image_root=image_root)
    results = []
    for name, mode in _runs(ctx, opts):
        model = _load(ctx, name, mode, opts)
        results.append(evaluate_retrieval(model, data, ks, through_collection=through_collection, store=store,
                                          exact_limit=exact_limit, filtered=filtered, batch_size=opts["batch_size"],
                                          progress=_progress(opts["quiet"])))
    if _write_outputs(results, opts["json_out"], opts["plot_out"]):
        return
    click.echo(f"{data.name}: {len(data.images)} images, {len(data.captions)} captions ({data.format}, {data.source})")
    click.echo(format_table(results))
    for r in results:
        c = r.collection
        if c is None:
            continue
        lost = "  ".join(f"{key.replace('image_retrieval_recall', 't>i R').replace('text_retrieval_recall', 'i>t R')}"
                         f" {100 * v:+.1f}" for key, v in c.recall_lost.items())
        index = "  ".join(f"{key.replace('text_to_image', 't>i').replace('image_to_text', 'i>t')} {v:.3f}"
                          for key, v in c.index_recall.items())
        click.echo(f"{r.model} [{r.mode}] via collection ({c.index}; {c.queries_per_second:,.0f} queries/s):\n"
                   f"  recall lost to the index (points): {lost}\n  index recall against exact search: {index}")


@eval_group.command("zeroshot")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_model_options
@click.option("--classnames", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="One class name per line, in sorted folder order [default: folder names, _ read as spaces].")
@click.option("--templates", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="One prompt template per line, with {c} for the class name [default: the dataset's own, else "
                   "CLIP's 80 ImageNet prompts].")
@click.option("--split", default="test", show_default=True, help="The split of a wds/ folder.")
@click.pass_context
def zeroshot(ctx: click.Context, folder: Path, classnames: Path | None, templates: Path | None, split: str,
             **opts: Any) -> None:
    """Zero-shot classification accuracy (acc1, acc5, mean_per_class_recall) of each model on FOLDER.

    FOLDER holds one sub-folder of images per class, or is a CLIP_benchmark
    wds/ folder with .cls labels and classnames.txt. Each class's vector is the
    normalized mean of its normalized prompts.

    \b
    Examples:
      crossmodal eval zeroshot imagenet/val --classnames imagenet_classnames.txt -m openai/clip-vit-base-patch32
      crossmodal eval zeroshot pictures/ -m MODEL --mode exact --mode fast --json zeroshot.json
    """
    from ..eval.harness import evaluate_zeroshot
    from ..eval.loading import load_classification_dataset
    from ..eval.results import format_table

    data = load_classification_dataset(folder, classnames=classnames, split=split)
    results = []
    for name, mode in _runs(ctx, opts):
        model = _load(ctx, name, mode, opts)
        results.append(evaluate_zeroshot(model, data, templates=templates, batch_size=opts["batch_size"],
                                         progress=_progress(opts["quiet"])))
    if _write_outputs(results, opts["json_out"], opts["plot_out"]):
        return
    click.echo(f"{data.name}: {len(data.images)} images, {len(data.classnames)} classes, "
               f"{results[0].templates} templates ({data.format}, {data.source})")
    click.echo(format_table(results))
