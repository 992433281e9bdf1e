"""Collection: texts, images and image+text pairs of one embedding space, searchable across modalities.

>>> store = crossmodal.open_store()                       # the default embedded store
>>> col = store.collection("photos", model=model)         # creates it, or opens it and checks the space
>>> col.add_images(["cat.jpg", "dog.jpg"], metadata=[{"album": "2024"}, {"album": "2023"}])
>>> col.add_texts(["a note about cats"])
>>> hits = col.search(text="a cat", top_k=5, modality="image", where={"album": "2024"})
>>> hits[0].id, hits[0].score, hits[0].modality, hits[0].reference, hits[0].metadata

A collection is bound to the :class:`~crossmodal.space.Space` of the model
that created it: it refuses models from another space and vectors of another
dimension (:class:`~crossmodal.errors.SpaceMismatch`,
:class:`~crossmodal.errors.DimensionMismatch`). Items keep a reference (an
image path relative to the collection's root, a URI, or the text itself) and a
content hash, never image bytes. Ids are derived from the reference unless
given, so adding the same thing twice updates one item; an item whose content
hash and metadata are unchanged is not embedded again. File names that are
not valid UTF-8 (surrogate escapes, as ``os.fsdecode`` gives them) are
stored in a form every store keeps and come back exactly as they went in
(see :mod:`~crossmodal.stores.codec`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import adding
from .adding import AddResult
from .dispatch import embed_inputs
from .embedder import l2_normalize
from .errors import ConfigError, InputError, ItemNotFound
from .inputs import Input, query_kind
from .records import check_records
from .references import HitPaths
from .references import resolve as resolve_reference
from .retrieval import Fusion, search_signals
from .space import Space
from .stores.base import (
    MODALITIES,
    CollectionBackend,
    CollectionInfo,
    Hit,
    Record,
    Selection,
    check_modalities,
)
from .stores.codec import decode_record, encode_filter
from .stores.filters import Filter, parse_where

if TYPE_CHECKING:
    from .embedder import Model

__all__ = ["AddResult", "Collection", "model_source"]

#: records per atomic backend write when adding or upserting
WRITE_BATCH = 256
MAX_TOP_K = 10_000
_EVERYTHING = Selection()  # (frozen: every search without a modality or filter shares it)


def model_source(model: Model) -> str:
    """What to pass to ``load_model`` to get ``model`` back: a catalog name, or its directory."""
    resolved = getattr(model, "resolved", None)
    if resolved is not None and resolved.origin == "local":
        return str(Path(resolved.files.root).resolve())
    return model.name


class Collection:
    """One named collection in a store, bound to one embedding space. Get it from ``store.collection(...)``."""

    def __init__(self, backend: CollectionBackend, model: Model | None = None, *, store: Any = None) -> None:
        self.backend = backend
        self.model = model
        self._store = store
        self._paths = HitPaths()
        if model is not None:
            backend.info.space.check_same(model.space, what=f"collection {backend.info.name!r}")

    def __repr__(self) -> str:
        return f"<crossmodal.Collection {self.name!r} space={self.space}>"

    # -- identity -------------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.backend.info.name

    @property
    def space(self) -> Space:
        return self.backend.info.space

    @property
    def backend_holds_token_vectors(self) -> bool:
        """Whether this collection's store keeps sparse vectors and multi-vectors (see :mod:`crossmodal.retrieval.tokens`)."""
        return bool(getattr(self.backend, "holds_token_vectors", False))

    @property
    def info(self) -> CollectionInfo:
        return self.backend.info

    @property
    def root(self) -> Path | None:
        """The folder that relative image references resolve against (None: references are absolute)."""
        root = self.backend.info.root
        return Path(root) if root else None

    def set_root(self, root: str | os.PathLike[str] | None) -> None:
        """Point relative references at another folder (after moving the whole folder)."""
        info = replace(self.backend.info, root=str(Path(root).expanduser().resolve()) if root else None)
        if self._store is not None:
            self._store.backend.update_collection(info)
        self.backend.info = info

    def describe(self) -> dict[str, Any]:
        """Name, counts, model and space, as JSON-able data (``crossmodal collections info``)."""
        info = self.backend.info
        counts = {m: self.backend.count(Selection(modalities=(m,))) for m in MODALITIES}
        return {
            "name": info.name,
            "count": sum(counts.values()),
            "counts": counts,
            "model": info.space.model,
            "dim": info.space.dim,
            "mode": info.space.mode,
            "normalized": info.space.normalized,
            "fingerprint": info.space.fingerprint,
            "pairs": info.space.to_dict()["pairs"],
            "model_source": info.model_source,
            "root": info.root,
            "created": info.created,
        }

    # -- references ------------------------------------------------------------------------------------------------

    def reference_for(self, path: str | os.PathLike[str]) -> str:
        """How a file path is recorded: relative to the root (posix separators) when inside it, else absolute."""
        p = Path(path).expanduser().absolute()
        root = self.root
        if root is not None:
            # The root is stored resolved; a path may reach it through a symlink (~/Pictures -> /data/pics).
            for candidate in (p, p.resolve()):
                try:
                    return candidate.relative_to(root).as_posix()
                except ValueError:
                    pass
        return str(p)

    def resolve(self, reference: str) -> Path | None:
        """The file an image reference points to (None for URIs)."""
        return resolve_reference(reference, self.backend.info.root)

    # -- writing ---------------------------------------------------------------------------------------------------

    def _need_model(self, what: str) -> Model:
        if self.model is None:
            source = self.info.model_source or self.space.model
            raise ConfigError(
                f"collection {self.name!r} was opened without a model, so it cannot {what}; open it with "
                f"store.collection({self.name!r}, model=crossmodal.load_model({source!r}))"
            )
        return self.model

    def upsert(self, records: Record | Iterable[Record], *, delete: Sequence[str] | None = None) -> list[str]:
        """Insert or replace items that already carry vectors (from another store, or embedded elsewhere).

        Vectors are checked against the space (:class:`DimensionMismatch`) and
        normalized; metadata is validated. Written in atomic batches of 256.
        With ``delete``, the items with those ids are deleted in the same
        single atomic write as all of ``records`` (a move: the new items
        appear and the old ones go at once, even if the process dies half-way;
        an id both written and deleted is written). Keep such a call to one
        batch's worth.
        """
        if isinstance(records, Record):
            records = [records]
        if delete is not None:
            moved = list(records)
            written = {r.id for r in moved}
            gone = [i for i in dict.fromkeys(delete) if i not in written]
            self.backend.replace(check_records(self.space, moved) if moved else [], gone)
            return [r.id for r in moved]
        ids: list[str] = []
        batch: list[Record] = []
        for r in records:
            batch.append(r)
            ids.append(r.id)
            if len(batch) >= WRITE_BATCH:
                self.backend.upsert(check_records(self.space, batch))
                batch = []
        if batch:
            self.backend.upsert(check_records(self.space, batch))
        return ids

    def add_images(
        self,
        images: Iterable[Any],
        *,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        references: Sequence[str | None] | None = None,
        on_error: str = "raise",
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> AddResult:
        """Embed and store images (paths, or bytes/PIL/arrays with ``references``); one item each.

        A path is recorded relative to the collection's root when inside it.
        Images given as bytes, PIL images or arrays need ``references`` saying
        where they can be found again (the store never keeps image bytes).
        With ``on_error="skip"``, bad images are reported in
        ``result.failures`` and the rest are stored.
        """
        images = adding.as_list(images, "images")
        return self.add([Input("image", image=img) for img in images], metadata=metadata, ids=ids,
                        references=references, on_error=on_error, batch_size=batch_size, workers=workers)

    def add_texts(
        self,
        texts: Iterable[str],
        *,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        references: Sequence[str | None] | None = None,
        on_error: str = "raise",
    ) -> AddResult:
        """Embed and store texts; the reference is the text itself unless given (e.g. the file it came from)."""
        texts = adding.as_list(texts, "texts")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"texts[{i}] is a {type(t).__name__}, not a string", index=i)
        return self.add([Input("text", text=t) for t in texts], metadata=metadata, ids=ids, references=references,
                        on_error=on_error)

    def add_pairs(
        self,
        images: Iterable[Any],
        texts: Iterable[str],
        *,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        references: Sequence[str | None] | None = None,
        image_weight: float | None = None,
        on_error: str = "raise",
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> AddResult:
        """Embed and store image+text pairs as one composed vector each (see ``Model.embed_pairs``)."""
        images = adding.as_list(images, "images")
        texts = adding.as_list(texts, "texts")
        if len(images) != len(texts):
            raise InputError(f"add_pairs needs as many texts as images ({len(texts)} texts, {len(images)} images)")
        inputs = [Input("pair", text=t, image=img, image_weight=image_weight) for img, t in zip(images, texts)]
        return self.add(inputs, metadata=metadata, ids=ids, references=references, on_error=on_error,
                        batch_size=batch_size, workers=workers)

    def add(
        self,
        inputs: Iterable[Input],
        *,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        references: Sequence[str | None] | None = None,
        on_error: str = "raise",
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> AddResult:
        """Embed and store texts, images and pairs given as :class:`~crossmodal.inputs.Input` values, mixed in
        any order (one item each; ids, references and failures as for ``add_images``/``add_texts``/``add_pairs``)."""
        planned = adding.plan(self, adding.as_list(inputs, "inputs"), metadata=metadata, ids=ids,
                              references=references)
        return adding.add(self, planned, on_error, batch_size=batch_size, workers=workers)

    def needs_embedding(
        self,
        inputs: Sequence[Input],
        *,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        references: Sequence[str | None] | None = None,
    ) -> list[bool]:
        """For each input, whether :meth:`add` would embed it (False: its content is stored already)."""
        planned = adding.plan(self, list(inputs), metadata=metadata, ids=ids, references=references)
        todo = {p.index for p in adding.pending(self, planned)[0]}
        return [p.index in todo for p in planned]

    def delete(
        self,
        ids: str | Sequence[str] | None = None,
        *,
        where: Mapping[str, Any] | Filter | None = None,
        modality: str | None = None,
    ) -> int:
        """Delete items by id, or every item matching ``where`` and/or ``modality``; returns how many went."""
        if ids is not None:
            if where is not None or modality is not None:
                raise ConfigError("delete takes ids, or where/modality, not both")
            return self.backend.delete([ids] if isinstance(ids, str) else list(ids))
        selection = self._selection(modality, where)
        if selection.where is None and selection.modalities is None:
            raise ConfigError("delete needs ids, where= or modality=; to remove everything, delete the collection")
        return self.backend.delete(None, selection)

    # -- reading ---------------------------------------------------------------------------------------------------

    def get(self, id: str, *, vector: bool = False) -> Record:  # noqa: A002
        """The item with this id, or :class:`ItemNotFound`."""
        found = self.backend.get([id], vectors=vector)
        if not found:
            raise ItemNotFound(f"no item {id!r} in collection {self.name!r}")
        return decode_record(found[0])

    def get_many(self, ids: Sequence[str], *, vectors: bool = False) -> list[Record]:
        """The items with these ids that exist, in the order given."""
        return [decode_record(r) for r in self.backend.get(list(ids), vectors=vectors)]

    def count(self, *, modality: str | None = None, where: Mapping[str, Any] | Filter | None = None) -> int:
        return self.backend.count(self._selection(modality, where))

    def __len__(self) -> int:
        return self.count()

    def items(self, *, modality: str | None = None, where: Mapping[str, Any] | Filter | None = None,
              vectors: bool = False) -> Iterator[Record]:
        """Every item (optionally only some), in a stable order."""
        return (decode_record(r) for r in self.backend.scan(self._selection(modality, where), vectors=vectors))

    @staticmethod
    def _selection(modality: str | Sequence[str] | None, where: Mapping[str, Any] | Filter | None) -> Selection:
        if modality is None and where is None:
            return _EVERYTHING
        return Selection(modalities=check_modalities(modality), where=encode_filter(parse_where(where)))

    # -- searching -------------------------------------------------------------------------------------------------

    def query_vector(
        self,
        *,
        text: str | None = None,
        image: Any = None,
        pair: tuple[Any, str] | None = None,
        vector: Any = None,
        like: str | None = None,
        image_weight: float | None = None,
    ) -> np.ndarray:
        """The unit query vector for one query (text, image, pair = image + text, a vector, or an item's id)."""
        kind = query_kind(text=text, image=image, pair=pair, vector=vector, like=like)
        if kind is None:
            if pair is not None and text is not None and image is not None:
                raise ConfigError("give text and image (a pair), or pair=, not both")
            both = text is not None and image is not None  # text with image: a pair
            given = [k for k, v in (("text", None if both else text), ("image", None if both else image),
                                    ("pair", pair if not both else True), ("vector", vector), ("like", like))
                     if v is not None]
            raise ConfigError("search needs exactly one query: text=, image=, text= with image= (a pair), pair=, "
                              f"vector= or like=; got {', '.join(given) or 'none'}")
        if kind == "vector":
            vec = self.space.check_vectors(vector, what="the query vector")
            if vec.shape[0] != 1:
                raise InputError(f"one query vector at a time, got {vec.shape[0]}")
        elif kind == "like":
            vec = np.asarray(self.get(like, vector=True).vector, dtype=np.float32)[None, :]  # type: ignore[arg-type]
        else:
            vec = self.embed_query(text=text, image=image, pair=pair, image_weight=image_weight)
        return l2_normalize(vec)[0]

    def embed_query(self, *, text: str | None = None, image: Any = None, pair: tuple[Any, str] | None = None,
                    image_weight: float | None = None) -> np.ndarray:
        """The (1, dim) vector of a text, image or pair query, embedded by the collection's model."""
        if pair is not None:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InputError("pair must be (image, text)")
            image, text = pair
        if text is not None and not isinstance(text, str):
            raise InputError(f"text must be a string, got {type(text).__name__}")
        query = Input.of(text=text, image=image, image_weight=image_weight)
        model = self._need_model(f"search by {query.kind}")
        return embed_inputs(model, [query])  # type: ignore[no-any-return]

    def search(
        self,
        text: str | None = None,
        *,
        image: Any = None,
        pair: tuple[Any, str] | None = None,
        vector: Any = None,
        like: str | None = None,
        top_k: int = 10,
        modality: str | None = None,
        where: Mapping[str, Any] | Filter | None = None,
        image_weight: float | None = None,
        using: str = "dense",
        keywords: str | None = None,
        fusion: Fusion | None = None,
        hide_duplicates: bool | float = False,
        rerank: str | None = None,
    ) -> list[Hit]:
        """The ``top_k`` items closest to one query, best first.

        Query with ``text=``, ``image=`` (path, bytes, PIL), both (an
        image+text pair, e.g. a photo and "but at night"), ``pair=(image,
        text)``, a ``vector=`` from this space, or ``like=ID`` ("more like
        this": the item itself is left out). ``modality`` keeps one kind of
        item (``"image"``, ``"text"``, ``"pair"``; None or ``"all"``: every
        kind); ``where`` filters on metadata (see
        :mod:`crossmodal.stores.filters`). Scores are cosine similarities.

        ``using="keyword"`` ranks by BM25 over texts, captions, file names and
        the metadata marked as text; ``using="hybrid"`` fuses dense and keyword
        results (reciprocal rank fusion, k = 60, or ``fusion=``); see
        :mod:`crossmodal.retrieval.search`. ``keywords`` is the text they match
        (default: the query's text). With a model that has sparse outputs
        (BGE-M3), ``using="sparse"`` ranks by the dot product of sparse
        vectors, and hybrid fuses it too; ``rerank="multivector"`` reorders the
        best candidates by MaxSim of the model's multi-vectors (see
        :mod:`crossmodal.retrieval.tokens`). Their hits say in ``signals``
        which signals found them, with what score.

        ``hide_duplicates`` (True, or a cosine threshold) leaves out hits that a better hit duplicates (see
        :mod:`crossmodal.duplicates`).
        """
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ConfigError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
        selection = self._selection(modality, where)
        if using != "dense" or rerank is not None:
            def signals(k: int) -> list[Hit]:
                return search_signals(
                    self.backend, using=using, top_k=k, selection=selection, text=text, image=image, pair=pair,
                    like=like, keywords=keywords, hit=self._hit, fusion=fusion, rerank=rerank, model=self.model,
                    dense_vector=lambda: self.query_vector(text=text, image=image, pair=pair, vector=vector,
                                                           like=like, image_weight=image_weight))
            return signals(top_k) if hide_duplicates is False else self._distinct(signals, top_k, hide_duplicates)
        if keywords is not None:
            raise ConfigError("keywords= is for using='keyword' or 'hybrid'; a dense search has no keyword part")
        vec = self.query_vector(text=text, image=image, pair=pair, vector=vector, like=like, image_weight=image_weight)

        def dense(k: int) -> list[Hit]:
            found = self.backend.query(vec, k + (1 if like is not None else 0), selection)
            return [self._hit(r, s) for r, s in found if r.id != like][:k]
        return dense(top_k) if hide_duplicates is False else self._distinct(dense, top_k, hide_duplicates)

    def _distinct(self, fetch: Callable[[int], list[Hit]], top_k: int, threshold: bool | float) -> list[Hit]:
        """Search hits (``fetch(k)``: the best k) without duplicates of better hits, asking for more until
        ``top_k`` remain (or no more)."""
        from .duplicates import DEFAULT_THRESHOLD, check_threshold, hide_duplicates

        cut = DEFAULT_THRESHOLD if threshold is True else check_threshold(threshold)
        ask = min(MAX_TOP_K, 4 * top_k)
        while True:
            hits = fetch(ask)
            stored = {r.id: r for r in self.backend.get([h.id for h in hits], vectors=True)}
            kept = hide_duplicates(hits, [getattr(stored.get(h.id), "vector", None) for h in hits],
                                   [getattr(stored.get(h.id), "content_hash", "") for h in hits], cut)
            if len(kept) >= top_k or len(hits) < ask or ask >= MAX_TOP_K:
                return kept[:top_k]
            ask = min(MAX_TOP_K, 4 * ask)

    def duplicates(self, threshold: float | None = None, *, modality: str | None = None,
                   progress: Any = None) -> list[Any]:
        """Groups of duplicate items, largest first: the same content, or cosine >= ``threshold`` (see
        :func:`crossmodal.duplicates.find_duplicates`)."""
        from .duplicates import DEFAULT_THRESHOLD, find_duplicates

        return find_duplicates(self, DEFAULT_THRESHOLD if threshold is None else threshold, modality=modality,
                               progress=progress)

    def duplicates_of(self, item_id: str, threshold: float | None = None) -> tuple[Any, dict[str, float]]:
        """The group of duplicates that holds ``item_id`` (None when it has none) and each member's cosine to it
        (see :func:`crossmodal.duplicates.duplicate_group`)."""
        from .duplicates import DEFAULT_THRESHOLD, duplicate_group

        try:
            return duplicate_group(self, item_id, DEFAULT_THRESHOLD if threshold is None else threshold)
        except ItemNotFound:
            raise ItemNotFound(f"no item {item_id!r} in collection {self.name!r}") from None

    def _hit(self, r: Record, score: float) -> Hit:
        r = decode_record(r)
        path = self._paths(r.reference, self.backend.info.root) if r.modality in ("image", "pair") else None
        # (Hit's fields in their order: keyword arguments cost a quarter more, once per hit)
        return Hit(r.id, float(score), r.modality, r.reference, dict(r.metadata), r.text, path)
