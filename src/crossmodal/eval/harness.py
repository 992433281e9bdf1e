"""Run an evaluation: embed a dataset with a model, compute CLIP_benchmark's metrics, time it.

>>> from crossmodal.eval import evaluate_retrieval, evaluate_zeroshot
>>> result = evaluate_retrieval(model, "flickr30k/flickr30k_test_karpathy.txt", k=(1, 5, 10))
>>> result.metrics["image_retrieval_recall@1"]          # text -> image
>>> result = evaluate_retrieval(model, dataset, through_collection=True)   # also through a collection's search
>>> result.collection.recall_lost
>>> evaluate_zeroshot(model, "imagenet/val", classnames="classnames.txt").metrics["acc1"]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError, InputError
from .datasets import (
    IMAGENET_TEMPLATES,
    ClassificationDataset,
    RetrievalDataset,
    describe,
    fill,
    iter_image_inputs,
    load_templates,
)
from .loading import load_classification_dataset, load_retrieval_dataset
from .metrics import (
    DEFAULT_CHUNK,
    accuracy_at_k,
    class_vectors,
    mean_per_class_recall,
    positive_ranks,
    retrieval_metrics,
)
from .metrics import retrieval_ranks as compute_retrieval_ranks
from .results import RetrievalResult, ZeroshotResult

if TYPE_CHECKING:
    from .. import Model, Store

__all__ = ["check_ks", "evaluate_retrieval", "evaluate_zeroshot"]


def check_ks(k: int | Iterable[int]) -> tuple[int, ...]:
    """Sorted, distinct positive k values."""
    ks = [k] if isinstance(k, int) else list(k)
    if not ks or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1 for x in ks):
        raise ConfigError(f"k must be positive integers, got {k!r}")
    return tuple(sorted({int(x) for x in ks}))


def _bar(total: int, desc: str, unit: str, progress: bool) -> Any:
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, file=sys.stderr, leave=False,
                dynamic_ncols=True)


def _rename(error: InputError, label: str, item: str) -> InputError:
    return type(error)(f"{label}: {item}: {error}", input=item)


def embed_images(model: Model, images: Sequence[Any], *, label: str, progress: bool = False,
                 batch_size: int | None = None) -> tuple[np.ndarray, float]:
    """(unit vectors, seconds) for a dataset's images; the first unreadable image stops it, named."""
    vectors = np.empty((len(images), model.dim), dtype=np.float32)
    start = time.perf_counter()
    with _bar(len(images), "images", "img", progress) as bar:
        for batch in model.iter_images(iter_image_inputs(images), on_error="skip", batch_size=batch_size):
            if batch.failures:
                f = batch.failures[0]
                raise _rename(f.error, label, f"image {describe(images[f.index])}") from f.error
            vectors[batch.indices] = batch.vectors
            bar.update(len(batch.indices))
    return vectors, time.perf_counter() - start


def embed_texts(model: Model, texts: Sequence[str], *, label: str, progress: bool = False,
                desc: str = "texts") -> tuple[np.ndarray, float]:
    vectors = np.empty((len(texts), model.dim), dtype=np.float32)
    start = time.perf_counter()
    with _bar(len(texts), desc, "text", progress) as bar:
        for batch in model.iter_texts(texts, on_error="skip"):
            if batch.failures:
                f = batch.failures[0]
                raise _rename(f.error, label, f"text {texts[f.index][:60]!r}") from f.error
            vectors[batch.indices] = batch.vectors
            bar.update(len(batch.indices))
    return vectors, time.perf_counter() - start


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def evaluate_retrieval(
    model: Model,
    dataset: RetrievalDataset | str | os.PathLike[str],
    k: int | Iterable[int] = (1, 5, 10),
    *,
    through_collection: bool = False,
    store: Store | str | os.PathLike[str] | None = None,
    exact_limit: int | None = None,
    filtered: bool = False,
    batch_size: int | None = None,
    progress: bool = False,
    chunk: int = DEFAULT_CHUNK,
) -> RetrievalResult:
    """Text -> image and image -> text recall@k of ``model`` on ``dataset`` (a dataset or a path to load).

    ``metrics`` holds CLIP_benchmark's ``image_retrieval_recall@k`` (a caption
    hits when its image is in the top k) and ``text_retrieval_recall@k`` (an
    image hits when any of its captions is), from exact dot products.

    ``through_collection=True`` also runs every query through a collection's
    search (the same vectors, stored in a fresh collection that is deleted
    afterwards) and reports, in ``result.collection``, its recall, the recall
    lost to the index and the index's recall against exact search. The
    collection lives in a temporary embedded store (``exact_limit``: search
    exactly up to that many items per modality, HNSW above; default 10,000)
    unless ``store`` names one (a :class:`~crossmodal.Store`, a path or a
    URI such as ``postgresql://...``), which implies ``through_collection``.
    ``filtered=True`` adds to every query a metadata filter that every item
    passes, to measure the store's filtered search path.

    ``progress`` draws progress bars on stderr. Scores are computed ``chunk``
    at a time (see :mod:`crossmodal.eval.metrics`).
    """
    from .collection_eval import evaluate_through_collection

    ks = check_ks(k)
    if not isinstance(dataset, RetrievalDataset):
        dataset = load_retrieval_dataset(dataset)
    if exact_limit is not None and store is not None and not isinstance(store, (str, os.PathLike)):
        raise ConfigError("exact_limit applies to a store this evaluation opens; open your store with "
                          "crossmodal.open_store(path, exact_limit=N) instead")
    started = time.perf_counter()
    label = dataset.label
    image_vectors, image_seconds = embed_images(model, dataset.images, label=label, progress=progress,
                                                batch_size=batch_size)
    text_vectors, text_seconds = embed_texts(model, dataset.captions, label=label, progress=progress,
                                             desc="captions")
    t2i, i2t = compute_retrieval_ranks(image_vectors, text_vectors, dataset.caption_image, chunk=chunk)
    metrics = retrieval_metrics(t2i, i2t, ks)
    report = None
    if through_collection or store is not None:
        report = evaluate_through_collection(model, dataset, image_vectors, text_vectors, ks, metrics, store=store,
                                             exact_limit=exact_limit, filtered=filtered, progress=progress,
                                             chunk=chunk)
    return RetrievalResult(
        dataset=dataset.name, model=model.name, mode=model.mode, runtime=model.runtime, dim=model.dim,
        images=len(dataset.images), texts=len(dataset.captions), k=ks, metrics=metrics,
        seconds=time.perf_counter() - started,
        images_per_second=_rate(len(dataset.images), image_seconds),
        texts_per_second=_rate(len(dataset.captions), text_seconds),
        text_to_image_ranks=t2i, image_to_text_ranks=i2t, space=model.space.to_dict(), collection=report,
    )


def evaluate_zeroshot(
    model: Model,
    dataset: ClassificationDataset | str | os.PathLike[str],
    *,
    classnames: str | os.PathLike[str] | Sequence[str] | None = None,
    templates: str | os.PathLike[str] | Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    chunk: int = DEFAULT_CHUNK,
) -> ZeroshotResult:
    """Zero-shot classification: ``acc1``, ``acc5`` (None/NaN under 5 classes), ``mean_per_class_recall``.

    Each class's vector is the normalized mean of its normalized prompts,
    one per template with ``{c}`` replaced by the class name. ``templates``
    is a file (one per line) or a list; default: the dataset's own (a
    ``wds/`` folder's ``zeroshot_classification_templates.txt``), else CLIP's
    80 ImageNet prompts. ``classnames`` (a file or a list, in label order)
    overrides the dataset's class names.
    """
    if not isinstance(dataset, ClassificationDataset):
        dataset = load_classification_dataset(dataset, classnames=classnames)
    elif classnames is not None:
        raise ConfigError("classnames applies when loading a dataset from a path; the dataset given has its own")
    if templates is None:
        prompts = list(dataset.templates) if dataset.templates else list(IMAGENET_TEMPLATES)
    elif isinstance(templates, (str, os.PathLike)):
        prompts = load_templates(templates)
    else:
        prompts = list(templates)
        for t in prompts:
            if "{c}" not in t:
                raise ConfigError(f"template {t!r} has no {{c}} where the class name goes")
    started = time.perf_counter()
    label = dataset.source or dataset.name
    texts = [fill(t, c) for c in dataset.classnames for t in prompts]
    text_vectors, text_seconds = embed_texts(model, texts, label=label, progress=progress, desc="prompts")
    classes = class_vectors(text_vectors.reshape(len(dataset.classnames), len(prompts), model.dim))
    image_vectors, image_seconds = embed_images(model, dataset.images, label=label, progress=progress,
                                                batch_size=batch_size)
    ranks = positive_ranks(image_vectors, classes, dataset.labels, chunk=chunk)
    n = len(dataset.classnames)
    metrics = {"acc1": accuracy_at_k(ranks, 1, n), "acc5": accuracy_at_k(ranks, 5, n),
               "mean_per_class_recall": mean_per_class_recall(ranks, dataset.labels)}
    return ZeroshotResult(
        dataset=dataset.name, model=model.name, mode=model.mode, runtime=model.runtime, dim=model.dim,
        images=len(dataset.images), classes=n, templates=len(prompts), metrics=metrics,
        seconds=time.perf_counter() - started,
        images_per_second=_rate(len(dataset.images), image_seconds), texts_per_second=_rate(len(texts), text_seconds),
        ranks=ranks, labels=dataset.labels, space=model.space.to_dict(),
    )
