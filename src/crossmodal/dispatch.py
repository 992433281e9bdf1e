"""The one modality dispatch: a mixed list of :class:`~crossmodal.inputs.Input` -> the model, rows in input order.

:func:`iter_inputs` groups the inputs by kind (and, for pairs, by image
weight), in the order each group first appears, streams each group through
the model's ``iter_texts`` / ``iter_images`` / ``iter_pairs``, and yields
:class:`InputBatch` objects whose ``indices`` and failures are positions in
the list given. :func:`embed_inputs` collects them into one array. The
collection, ingest, the CLI, the service's batcher and Ray's model actors
all embed through here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .embedder import EmbeddingBatch, Embeddings, Failure, OnError
from .embedder.results import check_on_error
from .inputs import Input

__all__ = ["Group", "InputBatch", "embed_inputs", "group_inputs", "iter_inputs"]


@dataclass(frozen=True)
class Group:
    """Inputs embedded in one stream: their kind, their pairs' image weight, and their positions."""

    kind: str
    image_weight: float | None
    positions: tuple[int, ...]


@dataclass
class InputBatch:
    """Vectors for some inputs of one group; ``indices`` and failures' indices are positions in the input list."""

    kind: str
    vectors: np.ndarray
    indices: np.ndarray
    failures: list[Failure] = field(default_factory=list)


def group_inputs(inputs: Sequence[Input]) -> list[Group]:
    """The groups of ``inputs`` (see the module docstring)."""
    groups: dict[tuple[str, float | None], list[int]] = {}
    for i, item in enumerate(inputs):
        key = (item.kind, item.image_weight if item.kind == "pair" else None)
        groups.setdefault(key, []).append(i)
    return [Group(kind, weight, tuple(positions)) for (kind, weight), positions in groups.items()]


def _stream(model: Any, group: Group, inputs: Sequence[Input], image_of: Callable[[Input], Any], *,
            normalize: bool, truncate: bool, batch_size: int | None, workers: int | None,
            processes: bool) -> Iterator[EmbeddingBatch]:
    members = [inputs[i] for i in group.positions]
    if group.kind == "text":
        return model.iter_texts([m.text for m in members], normalize=normalize, truncate=truncate,
                                batch_size=batch_size, on_error="skip")
    # images are read as the model reaches them, not all up front (a generator, for ``image_of``)
    images = (image_of(m) for m in members)
    if group.kind == "image":
        return model.iter_images(images, normalize=normalize, batch_size=batch_size, on_error="skip",
                                 workers=workers, processes=processes)
    return model.iter_pairs(images, [m.text for m in members], image_weight=group.image_weight, normalize=normalize,
                            truncate=truncate, batch_size=batch_size, on_error="skip", workers=workers)


def iter_inputs(
    model: Any,
    inputs: Sequence[Input],
    *,
    normalize: bool = True,
    truncate: bool = True,
    batch_size: int | None = None,
    workers: int | None = None,
    processes: bool = False,
    on_error: OnError = "skip",
    image_of: Callable[[Input], Any] | None = None,
) -> Iterator[InputBatch]:
    """Embed ``inputs`` group by group, yielding batches as the model makes them.

    ``on_error="raise"`` raises the first bad input's error, naming its position in ``inputs``; ``"skip"``
    reports it in the batch's failures. ``image_of(input)`` gives what the model reads for an input's image
    (default: ``input.image``), called as the model reaches it. ``processes`` applies to images alone (pairs
    decode on threads).
    """
    check_on_error(on_error)
    read = image_of or (lambda item: item.image)
    for group in group_inputs(inputs):
        positions = np.asarray(group.positions, dtype=np.int64)
        for batch in _stream(model, group, inputs, read, normalize=normalize, truncate=truncate,
                             batch_size=batch_size, workers=workers, processes=processes and group.kind == "image"):
            failures = [Failure(index=int(positions[f.index]), input=f.input, error=f.error) for f in batch.failures]
            if failures and on_error == "raise":
                first = failures[0]
                raise first.error.at(first.index)
            yield InputBatch(group.kind, batch.vectors, positions[batch.indices], failures)


def embed_inputs(model: Any, inputs: Sequence[Input], *, on_error: OnError = "raise", **options: Any) -> Any:
    """``inputs`` -> float32 (n, dim), one row per input in order; with ``on_error="skip"``, :class:`Embeddings`
    (the good rows in input order, their positions, a failure per bad input). ``options``: see :func:`iter_inputs`."""
    vectors, indices, failures = [], [], []
    for batch in iter_inputs(model, inputs, on_error=on_error, **options):
        vectors.append(batch.vectors)
        indices.append(batch.indices)
        failures += batch.failures
    idx = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    matrix = np.concatenate(vectors)[order] if vectors else np.zeros((0, model.dim), dtype=np.float32)
    if on_error == "raise":
        return matrix
    return Embeddings(vectors=matrix, indices=idx[order], failures=sorted(failures, key=lambda f: f.index))
