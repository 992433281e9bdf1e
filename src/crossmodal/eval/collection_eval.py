"""The same retrieval evaluation, run through a collection's search instead of exact dot products.

The dataset's vectors (the ones the exact evaluation used) go into a fresh
collection, and every caption and image queries it with ``Collection.search``
(``modality="image"`` or ``"text"``, the top max(k)), so the figures include
whatever the store does on its query path: the embedded store's HNSW index
above its exact limit and the exact rescoring of its candidates, a server
store's index, and with ``filtered=True`` a metadata filter that every item
passes. The collection is deleted afterwards.

Besides the recall through the collection, the report gives the recall lost
to the index (the model's own metric minus the collection's) and the
index's own recall: the share of each query's exact top-k that the
collection's top-k holds. A query's hit can change only when its top-k
changed, so ``|recall lost at k|`` is at most the share of queries whose
top-k differs, at most ``k * (1 - index recall at k)``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from .. import Record
from ..errors import ConfigError
from .datasets import RetrievalDataset, describe
from .metrics import DEFAULT_CHUNK, top_k
from .results import CollectionReport

if TYPE_CHECKING:
    from .. import Model, Store

__all__ = ["EMBEDDED_EXACT_LIMIT", "evaluate_through_collection", "index_recall"]

#: the embedded store's default: exact search up to this many items per modality, HNSW above
EMBEDDED_EXACT_LIMIT = 10_000


def _kind(uri: str) -> str:
    head, sep, _ = uri.partition("://")
    if not sep or head == "file":
        return "embedded"
    return "postgresql" if head.startswith("postgres") else head


def _describe_index(kind: str, limit: int | None, counts: dict[str, int], filtered: bool) -> str:
    extra = ", filtered" if filtered else ""
    if kind != "embedded" or limit is None:
        return f"{kind} store{extra}"
    plans = {m: "exact" if n <= limit else "HNSW + exact rescoring" for m, n in counts.items()}
    if len(set(plans.values())) == 1:
        plan = next(iter(plans.values()))
    else:
        plan = ", ".join(f"{m}: {p}" for m, p in plans.items())
    return f"embedded store, {plan} (exact up to {limit:,} items per modality{extra})"


def _open(stack: ExitStack, store: Store | str | os.PathLike[str] | None, exact_limit: int | None
          ) -> tuple[Store, str, int | None]:
    from .. import open_store

    if store is None:
        limit = EMBEDDED_EXACT_LIMIT if exact_limit is None else int(exact_limit)
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="crossmodal-eval-"))
        opened = stack.enter_context(open_store(folder, exact_limit=limit, durable=False))
        return opened, "embedded", limit
    if isinstance(store, (str, os.PathLike)):
        uri = os.fspath(store)
        kind = _kind(uri)
        if exact_limit is not None and kind != "embedded":
            raise ConfigError(f"exact_limit applies to the embedded store, not to {uri}")
        options = {} if exact_limit is None else {"exact_limit": int(exact_limit)}
        opened = stack.enter_context(open_store(uri, **options))
        return opened, kind, (exact_limit if exact_limit is not None else
                              (EMBEDDED_EXACT_LIMIT if kind == "embedded" else None))
    return store, _kind(store.uri), None


def index_recall(found: Sequence[Sequence[int]], exact: np.ndarray, k: int, n_candidates: int) -> float:
    """Mean over queries of |found[:k] & exact[:k]| / min(k, candidates)."""
    want = min(k, n_candidates)
    if not len(exact) or want == 0:
        return float("nan")
    shares = [len(set(f[:want]) & set(e[:want].tolist())) / want for f, e in zip(found, exact)]
    return float(np.mean(shares))


def evaluate_through_collection(
    model: Model,
    dataset: RetrievalDataset,
    image_vectors: np.ndarray,
    text_vectors: np.ndarray,
    ks: Sequence[int],
    model_metrics: dict[str, float],
    *,
    store: Store | str | os.PathLike[str] | None = None,
    exact_limit: int | None = None,
    filtered: bool = False,
    progress: bool = False,
    chunk: int = DEFAULT_CHUNK,
) -> CollectionReport:
    """``dataset``'s vectors searched through a collection: its recall, the recall lost, the index's recall."""
    from .metrics import retrieval_metrics

    n_images, n_texts = len(image_vectors), len(text_vectors)
    top = max(ks)
    owner = dataset.caption_image
    meta = {"eval_dataset": dataset.name}
    where = meta if filtered else None
    with ExitStack() as stack:
        opened, kind, limit = _open(stack, store, exact_limit)
        name = f"eval-{uuid.uuid4().hex[:12]}"
        col = opened.collection(name, model=model)
        stack.callback(opened.delete_collection, name)
        col.upsert(Record(f"i{i:09d}", "image", describe(dataset.images[i]), vector=v, metadata=meta)
                   for i, v in enumerate(image_vectors))
        col.upsert(Record(f"t{j:09d}", "text", f"caption {j}", vector=v, text=dataset.captions[j], metadata=meta)
                   for j, v in enumerate(text_vectors))
        t2i = np.full(n_texts, n_images, dtype=np.int64)
        i2t = np.full(n_images, n_texts, dtype=np.int64)
        found_images: list[list[int]] = []
        found_texts: list[list[int]] = []
        start = time.perf_counter()
        with tqdm(total=n_texts + n_images, desc="searches", unit="query", disable=not progress, leave=False,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for j in range(n_texts):
                hits = col.search(vector=text_vectors[j], top_k=min(top, n_images), modality="image", where=where)
                ids = [int(h.id[1:]) for h in hits]
                found_images.append(ids)
                if owner[j] in ids:
                    t2i[j] = ids.index(int(owner[j]))
                bar.update()
            for i in range(n_images):
                hits = col.search(vector=image_vectors[i], top_k=min(top, n_texts), modality="text", where=where)
                ids = [int(h.id[1:]) for h in hits]
                found_texts.append(ids)
                mine = [p for p, t in enumerate(ids) if owner[t] == i]
                if mine:
                    i2t[i] = mine[0]
                bar.update()
        seconds = time.perf_counter() - start
    metrics = retrieval_metrics(t2i, i2t, ks)
    exact_images = top_k(text_vectors, image_vectors, top, chunk=chunk)
    exact_texts = top_k(image_vectors, text_vectors, top, chunk=chunk)
    recall = {}
    for k in ks:
        recall[f"text_to_image@{k}"] = index_recall(found_images, exact_images, k, n_images)
        recall[f"image_to_text@{k}"] = index_recall(found_texts, exact_texts, k, n_texts)
    return CollectionReport(
        store=kind,
        index=_describe_index(kind, limit, {"images": n_images, "texts": n_texts}, filtered),
        metrics=metrics,
        recall_lost={key: model_metrics[key] - metrics[key] for key in metrics},
        index_recall=recall,
        seconds=seconds,
        queries_per_second=(n_texts + n_images) / seconds if seconds > 0 else float("inf"),
        text_to_image_ranks=t2i,
        image_to_text_ranks=i2t,
        top_k=top,
    )
