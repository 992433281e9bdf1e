"""``crossmodal embed`` and ``crossmodal similarity``."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..dispatch import embed_inputs
from ..errors import ConfigError
from ..inputs import Input
from .options import load_model_from_options, model_options, pop_model_options
from .token_outputs import OUTPUT_KINDS, embed_token_outputs, token_outputs_json, token_outputs_npz

__all__ = ["embed", "embed_items", "note_truncated", "parse_item", "similarity", "truncate_option",
           "truncated_items"]


def parse_flags(args: list[str]) -> list[Input]:
    """``--text T``, ``--image F`` and ``--image F --text T`` (a pair), in order."""
    items: list[Input] = []
    i = 0
    while i < len(args):
        flag = args[i]
        if flag not in ("--text", "-t", "--image", "-i"):
            raise ConfigError(f"unexpected argument {flag!r}; inputs are --text TEXT, --image FILE or --image FILE --text TEXT")
        if i + 1 >= len(args):
            raise ConfigError(f"{flag} needs a value")
        value = args[i + 1]
        i += 2
        if flag in ("--text", "-t"):
            items.append(Input("text", text=value))
        elif i + 1 < len(args) and args[i] in ("--text", "-t"):
            items.append(Input("pair", image=value, text=args[i + 1]))
            i += 2
        else:
            items.append(Input("image", image=value))
    if not items:
        raise ConfigError("nothing to embed: give at least one --text or --image")
    return items


def parse_item(spec: str) -> Input:
    """``text:...``, ``image:PATH`` or ``pair:PATH|text``."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in ("text", "image", "pair"):
        raise ConfigError(f"item {spec!r} must look like text:..., image:PATH or pair:PATH|text")
    if kind == "text":
        return Input("text", text=rest)
    if kind == "image":
        return Input("image", image=rest)
    image, bar, text = rest.partition("|")
    if not bar:
        raise ConfigError(f"pair item {spec!r} must look like pair:PATH|text")
    return Input("pair", image=image, text=text)


def embed_items(model: Any, items: list[Input], *, normalize: bool = True, image_weight: float | None = None,
                truncate: bool = True) -> np.ndarray:
    """Vectors for mixed items, in input order (each kind embedded in one batch)."""
    weighted = [replace(item, image_weight=image_weight) if item.kind == "pair" else item for item in items]
    return embed_inputs(model, weighted, normalize=normalize, truncate=truncate)  # type: ignore[no-any-return]


def truncated_items(model: Any, items: list[Input]) -> list[bool]:
    """Which items hold a text over the model's context length (cut to fit unless truncation is off)."""
    from ..preprocessing.texts import over_context

    flags = [False] * len(items)
    with_text = [i for i, item in enumerate(items) if item.text is not None]
    for i, over in zip(with_text, over_context(model.tokenizer, [items[i].text for i in with_text])):
        flags[i] = over
    return flags


def note_truncated(model: Any, which: list[str], *, refusable: bool = True) -> None:
    """Say on stderr that the texts of ``which`` were cut to the context length (stdout stays data)."""
    if not which:
        return
    one = len(which) == 1
    click.echo(f"note: the text of {', '.join(which)} {'is' if one else 'are'} over the model's context length of "
               f"{model.spec.text.context_length} tokens and {'was' if one else 'were'} cut to fit"
               + ("; --no-truncate refuses such texts instead" if refusable else ""), err=True)


def truncate_option(fn: Any) -> Any:
    return click.option("--no-truncate", "no_truncate", is_flag=True,
                        help="Refuse a text over the model's context length (exit status 3) instead of cutting it "
                             "to fit, as is done by default.")(fn)


def _write(data: bytes | str, output: Path | None) -> None:
    if output is None:
        if isinstance(data, bytes):
            if sys.stdout.isatty():
                raise ConfigError("refusing to write binary arrays to a terminal; use -o FILE or a pipe")
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            click.echo(data, nl=False)
        return
    output.write_bytes(data) if isinstance(data, bytes) else output.write_text(data, encoding="utf-8")


def _output_kind(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value not in OUTPUT_KINDS:
        hint = "; to write to a file, use -o FILE (--out FILE)" if any(c in value for c in "./\\") else ""
        raise click.BadParameter(f"{value!r} is not one of {', '.join(OUTPUT_KINDS)}{hint}")
    return value


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@model_options
@click.option("--format", "fmt", type=click.Choice(["json", "npy", "csv"]), default="json", show_default=True,
              help="npy: a .npy array of dense vectors, a .npz archive for sparse and multivector (see below).")
@click.option("--output", "kind", default="dense", show_default=True, callback=_output_kind,
              metavar="[dense|sparse|multivector]",
              help="Which output: one dense vector per input, or per text its sparse weights or its token vectors "
                   "(for models that give them).")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of stdout.")
@click.option("--no-normalize", is_flag=True, help="Raw projections instead of unit vectors (dense output).")
@click.option("--image-weight", type=click.FloatRange(0, 1), default=None, help="Image share of a pair vector (default 0.5).")
@truncate_option
@click.argument("inputs", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def embed(ctx: click.Context, fmt: str, kind: str, out: Path | None, no_normalize: bool, image_weight: float | None,
          no_truncate: bool, inputs: tuple[str, ...], **kwargs: Any) -> None:
    """Embed texts, images and pairs; one vector per input, in input order.

    \b
    Inputs, repeatable and mixed in any order:
      --text TEXT               a text
      --image FILE              an image
      --image FILE --text TEXT  an image+text pair (an --image directly followed by --text)

    A text over the model's context length (77 tokens for CLIP) is cut to fit, as the library and
    the HTTP API do; a note on stderr (and "truncated" in the JSON) says so. --no-truncate refuses it.

    \b
    --output sparse and --output multivector (texts only, for models that give them, such as BGE-M3):
      json  each item holds "sparse": {"indices": [...], "values": [...]} (token ids ascending)
            or "multivector": [[...], ...] (one unit row per token)
      npy   a .npz archive of flat arrays; text i's entries are rows offsets[i]:offsets[i+1]
            sparse: indices (int64), values (float32), offsets (int64, n+1): CSR, as
                    scipy.sparse.csr_matrix((values, indices, offsets)) reads it
            multivector: vectors (float32, total tokens x dim), offsets (int64, n+1)

    \b
    Examples:
      crossmodal embed --text "a dog" --image cat.jpg
      crossmodal embed --image cat.jpg --text "at night" --format npy -o pair.npy
      crossmodal embed -m BAAI/bge-m3 --output sparse --text "a dog" --text "一条龙"
    """
    items = parse_flags(list(inputs))
    if kind != "dense":
        if fmt == "csv":
            raise ConfigError(f"--format csv holds dense vectors only; write --output {kind} as json or npy")
        if no_normalize:
            raise ConfigError("--no-normalize applies to dense vectors; sparse weights and token vectors come as "
                              "the model makes them")
    model = load_model_from_options(ctx, **pop_model_options(kwargs))
    if kind == "dense":
        vectors = embed_items(model, items, normalize=not no_normalize, image_weight=image_weight,
                              truncate=not no_truncate)
    else:
        outputs = embed_token_outputs(model, items, kind, truncate=not no_truncate)
    cut = truncated_items(model, items) if not no_truncate else [False] * len(items)
    note_truncated(model, [f"input #{i}" for i, over in enumerate(cut) if over])
    if fmt == "npy" and kind != "dense":
        _write(token_outputs_npz(kind, outputs), out)
    elif fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, vectors)
        _write(buf.getvalue(), out)
    elif fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["kind", "input", *[f"d{j}" for j in range(vectors.shape[1])]])
        for item, vec in zip(items, vectors):
            writer.writerow([item.kind, item.label.split(":", 1)[1], *(repr(float(x)) for x in vec)])
        _write(text.getvalue(), out)
    else:
        values = [[float(x) for x in vec] for vec in vectors] if kind == "dense" else token_outputs_json(kind, outputs)
        field = "embedding" if kind == "dense" else kind
        doc = {
            "model": model.name,
            "space": model.space.to_dict(),
            "output": kind,
            **({"normalized": not no_normalize, "dim": model.dim} if kind == "dense" else {}),
            "data": [
                {"index": i, "kind": item.kind, "text": item.text, "image": item.image, "truncated": over,
                 field: value}
                for i, (item, value, over) in enumerate(zip(items, values, cut))
            ],
        }
        _write(json.dumps(doc, ensure_ascii=False) + "\n", out)


@click.command()
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print {labels, matrix} as JSON.")
@click.option("--image-weight", type=click.FloatRange(0, 1), default=None, help="Image share of a pair vector (default 0.5).")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE.png",
              help="Also draw the matrix as a labelled heatmap (needs crossmodal[plot]).")
@truncate_option
@click.argument("items", nargs=-1, required=True)
@click.pass_context
def similarity(ctx: click.Context, as_json: bool, image_weight: float | None, plot_out: Path | None,
               no_truncate: bool, items: tuple[str, ...], **kwargs: Any) -> None:
    """Cosine similarity between every two ITEMs: text:..., image:PATH or pair:PATH|text.

    \b
    Example: how close a caption, a picture and the picture+caption pair are to one another:
      crossmodal similarity "text:a dragon" image:dragon.png "pair:dragon.png|a dragon"
    """
    parsed = [parse_item(s) for s in items]
    model = load_model_from_options(ctx, **pop_model_options(kwargs))
    vectors = embed_items(model, parsed, image_weight=image_weight, truncate=not no_truncate)
    cut = truncated_items(model, parsed) if not no_truncate else [False] * len(parsed)
    note_truncated(model, [f"item #{i}" for i, over in enumerate(cut) if over])
    matrix = vectors @ vectors.T
    labels = [p.label for p in parsed]
    if plot_out is not None:
        from ..eval.plots import plot_similarity

        plot_similarity(labels, matrix, plot_out, title=f"cosine similarity ({model.name})")
    if as_json:
        click.echo(json.dumps({"model": model.name, "labels": labels, "matrix": matrix.round(6).tolist(),
                               "truncated": cut}, ensure_ascii=False))
        return
    short = [lab if len(lab) <= 28 else lab[:25] + "..." for lab in labels]
    width = max(len(s) for s in short)
    click.echo(" " * (width + 2) + " ".join(f"{j:>7}" for j in range(len(short))))
    for i, lab in enumerate(short):
        click.echo(f"{i:>2} {lab:<{width}}" + "".join(f" {matrix[i, j]:7.4f}" for j in range(len(short)))[0:])
