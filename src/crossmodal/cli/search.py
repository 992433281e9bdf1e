"""``crossmodal search``: find items by text, image, image+text, or likeness to an item."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..duplicates import DEFAULT_THRESHOLD
from ..errors import ConfigError
from ..retrieval.highlight import highlight_spans
from .collections import collection_for, collection_option
from .embed import note_truncated
from .options import model_options, open_store_from_options, pop_model_options, store_option
from .output import json_line, printable
from .where import parse_where_option

__all__ = ["parse_where_option", "search"]


def _snippet(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _human(rank: int, hit: Any) -> str:
    if hit.modality == "text" and hit.text is not None and hit.reference == hit.text:
        shown = json.dumps(_snippet(hit.text), ensure_ascii=False)
    elif hit.modality == "text" and hit.text is not None:
        shown = f"{hit.reference}  {json.dumps(_snippet(hit.text, 50), ensure_ascii=False)}"
    elif hit.modality == "pair":
        shown = f"{hit.reference}  + {json.dumps(_snippet(hit.text or '', 40), ensure_ascii=False)}"
    else:
        shown = hit.reference
    if hit.modality == "text" and "image" in hit.metadata and hit.reference == hit.text:
        shown += f"  (caption of {hit.metadata['image']})"
    found_by = ""
    if hit.signals:
        found_by = "  [" + ", ".join(f"{name} {score:.4f}" for name, score in hit.signals.items()) + "]"
    return f"{rank:>3}  {hit.score:7.4f}  {hit.modality:<5}  {shown}{found_by}"


@click.command()
@click.argument("query", required=False)
@click.option("--text", "-t", "text", default=None, help="Query text (same as QUERY).")
@click.option("--image", "-i", "image", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Query image; with a text, the query is the image+text pair.")
@click.option("--like", "like", default=None, metavar="ID", help="More like the item with this id.")
@collection_option
@store_option
@model_options
@click.option("--modality", type=click.Choice(["image", "text", "pair", "all"]), default="all", show_default=True,
              help="Which kind of item to return.")
@click.option("--top-k", "-k", "top_k", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option("--where", "-w", "where", multiple=True, metavar="EXPR",
              help="Metadata filter (grammar below); repeatable, all must hold.")
@click.option("--filter", "filter_json", default=None, metavar="JSON",
              help='Full filter language, e.g. \'{"$or": [{"album": "2024"}, {"starred": true}]}\'.')
@click.option("--image-weight", type=click.FloatRange(0, 1), default=None, help="Image share of a pair query.")
@click.option("--using", type=click.Choice(["dense", "keyword", "sparse", "hybrid"]), default="dense",
              show_default=True,
              help="dense: by meaning (vectors); keyword: by the words themselves (BM25 over texts, captions, file "
                   "names); sparse: by the model's sparse (lexical) vectors, for a model that has them (BGE-M3); "
                   "hybrid: all of these the collection has, fused by rank.")
@click.option("--rerank", type=click.Choice(["multivector"]), default=None,
              help="multivector: reorder the best candidates by MaxSim of the model's multi-vectors (ColBERT-style; "
                   "for a model that has them, such as BGE-M3).")
@click.option("--hide-duplicates", is_flag=True,
              help="Leave out hits that a better hit duplicates (same content, or nearly the same vector; "
                   "see `crossmodal duplicates`).")
@click.option("--duplicate-threshold", type=click.FloatRange(0, 1, min_open=True), default=DEFAULT_THRESHOLD,
              show_default=True, help="With --hide-duplicates: the cosine similarity that makes a near-duplicate.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@click.pass_context
def search(ctx: click.Context, query: str | None, text: str | None, image: Path | None, like: str | None,
           collection: str, store: str | None, modality: str, top_k: int, where: tuple[str, ...],
           filter_json: str | None, image_weight: float | None, using: str, rerank: str | None,
           hide_duplicates: bool, duplicate_threshold: float, as_json: bool, **kwargs: Any) -> None:
    """Search a collection by text, by image, by image+text, or by likeness to an item.

    \b
    Examples:
      crossmodal search "a cat"
      crossmodal search --image q.jpg --modality image
      crossmodal search --image q.jpg --text "but at night"
      crossmodal search "beach" --where album=2024 --where 'year>=2020' --json
      crossmodal search "IMG_2041" --using keyword
      crossmodal search "zanzibar sunset" --using hybrid
      crossmodal search "zanzibar sunset" --using sparse --rerank multivector
    \b
    --where EXPR, one condition on the items' metadata:
      key=value     equal; 2024 also matches the number 2024, true the boolean
      key!=value    not equal (also true where the key is missing)
      key=[a,b]     any of the values; key!=[a,b]: none of them
      key>n  key>=n  key<n  key<=n
                    n is a number, an ISO date or time (2024-06-01, 2024-06-01T12:00),
                    or a "quoted" text to compare texts
      key="text"    exactly this text (not a number or a boolean)
    Any other form is an error (exit status 2). --filter takes the full JSON language.
    """
    if query is not None and text is not None:
        raise ConfigError("give the text once: as QUERY or with --text")
    text = text if text is not None else query
    if text is None and image is None and like is None:
        raise ConfigError('nothing to search for: give a text ("a cat"), --image FILE, both, or --like ID')
    filters = parse_where_option(where, filter_json)
    st = open_store_from_options(ctx, store)
    col = collection_for(ctx, st, collection, pop_model_options(kwargs), create=False,
                         need_model=(like is None and using != "keyword") or rerank is not None)
    if text is not None and col.model is not None and using != "keyword":  # the query is cut to fit, as every text is by default
        from ..preprocessing.texts import over_context

        note_truncated(col.model, ["the query"] if over_context(col.model.tokenizer, [text])[0] else [],
                       refusable=False)
    hits = col.search(text=text, image=str(image) if image is not None else None, like=like, top_k=top_k,
                      modality=None if modality == "all" else modality, where=filters, image_weight=image_weight,
                      using=using, rerank=rerank, hide_duplicates=duplicate_threshold if hide_duplicates else False)
    if as_json:
        for hit in hits:
            out = hit.to_dict()
            if (using != "dense" or rerank) and text is not None and hit.text:
                out["highlights"] = [list(span) for span in highlight_spans(hit.text, text)]
            click.echo(json_line(out))
        return
    if not hits:
        click.echo("no results" + (" (the filters leave nothing)" if filters or modality != "all" else ""), err=True)
        return
    for rank, hit in enumerate(hits, start=1):
        click.echo(printable(_human(rank, hit)))
