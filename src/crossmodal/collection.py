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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .embedder import Failure, l2_normalize
from .errors import ConfigError, InputError, ItemNotFound
from .identity import hash_image_input, hash_text, make_id
from .preprocessing.images import describe_input
from .retrieval import Fusion, search_signals
from .retrieval.tokens import check_sparse, with_token_vectors
from .space import Space
from .stores.base import (
    MAX_ID_LENGTH,
    MODALITIES,
    CollectionBackend,
    CollectionInfo,
    Hit,
    Record,
    Selection,
    check_metadata,
    check_modalities,
    valid_id,
)
from .stores.codec import decode_record, encode_filter, encode_record
from .stores.filters import Filter, parse_where

if TYPE_CHECKING:
    from .embedder import Model

__all__ = ["AddResult", "Collection", "model_source"]

#: records per atomic backend write when adding or upserting
WRITE_BATCH = 256
MAX_TOP_K = 10_000


@dataclass
class AddResult:
    """What ``add_*`` did: one id per input (None where the input failed), and counts."""

    ids: list[str | None] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failures: list[Failure] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class _Planned:
    index: int  # position in the caller's input
    record: Record  # without vector yet
    source: Any  # what the model embeds (an image input, a text, or an (image, text) pair)


def model_source(model: Model) -> str:
    """What to pass to ``load_model`` to get ``model`` back: a catalog name, or its directory."""
    resolved = getattr(model, "resolved", None)
    if resolved is not None and resolved.origin == "local":
        return str(Path(resolved.files.root).resolve())
    return model.name


def _as_list(items: Any, what: str) -> list[Any]:
    if isinstance(items, (str, bytes, os.PathLike)):
        raise InputError(f"{what} must be a list; wrap a single one in [...]", input=str(items)[:60])
    return list(items)


def _token_checked(r: Record) -> Record:
    """``r`` with its sparse vector and multi-vector (if any) checked: InputError naming the item otherwise."""
    if r.sparse is None and r.multivector is None:
        return r
    multi = r.multivector
    if multi is not None:
        multi = np.asarray(multi, dtype=np.float32)
        if multi.ndim != 2 or not np.isfinite(multi).all():
            raise InputError(f"item {r.id!r}: a multi-vector is a finite (tokens, dim) array, got shape {multi.shape}")
        multi = multi.astype(np.float16)
    return replace(r, sparse=None if r.sparse is None else check_sparse(r.sparse, f"item {r.id!r}"), multivector=multi)


def _per_item(values: Sequence[Any] | None, n: int, what: str) -> list[Any]:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise InputError(f"{what} has {len(values)} entries for {n} inputs")
    return values


class Collection:
    """One named collection in a store, bound to one embedding space. Get it from ``store.collection(...)``."""

    def __init__(self, backend: CollectionBackend, model: Model | None = None, *, store: Any = None) -> None:
        self.backend = backend
        self.model = model
        self._store = store
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
        return bool(getattr(type(self.backend), "holds_token_vectors", False))

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
        if "://" in reference:
            return Path(reference[7:]) if reference.startswith("file://") else None
        p = Path(reference)
        if p.is_absolute() or self.root is None:
            return p
        return self.root / p

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
            batch = list(records)
            written = {r.id for r in batch}
            gone = [i for i in dict.fromkeys(delete) if i not in written]
            self.backend.replace(self._checked_batch(batch) if batch else [], gone)
            return [r.id for r in batch]
        ids: list[str] = []
        batch: list[Record] = []
        for r in records:
            batch.append(r)
            ids.append(r.id)
            if len(batch) >= WRITE_BATCH:
                self.backend.upsert(self._checked_batch(batch))
                batch = []
        if batch:
            self.backend.upsert(self._checked_batch(batch))
        return ids

    def _checked_batch(self, batch: list[Record]) -> list[Record]:
        """:meth:`_checked` for a whole batch, with the vector checks and normalization done as one matrix."""
        dim = self.space.dim
        shapes_ok = all(isinstance(r.vector, np.ndarray) and r.vector.size == dim for r in batch)
        if not shapes_ok:
            return [self._checked(r) for r in batch]  # the per-item path names the bad item
        if not all(valid_id(r.id) for r in batch):
            return [self._checked(r) for r in batch]
        matrix = np.stack([r.vector.reshape(dim) for r in batch]).astype(np.float32, copy=False)  # type: ignore[union-attr]
        if not np.isfinite(matrix).all():
            return [self._checked(r) for r in batch]
        if self.space.normalized:
            matrix = l2_normalize(matrix)
        out = []
        for r, vec in zip(batch, matrix):
            if r.modality not in MODALITIES:
                return [self._checked(r) for r in batch]
            out.append(encode_record(replace(_token_checked(r), vector=vec, metadata=check_metadata(r.metadata),
                                             reference=str(r.reference))))
        return out

    def _checked(self, r: Record) -> Record:
        if not valid_id(r.id):
            raise InputError(f"item id must be a non-empty string of at most {MAX_ID_LENGTH} characters of valid "
                             f"Unicode, got {r.id!r}")
        if r.modality not in MODALITIES:
            raise InputError(f"item {r.id!r}: modality must be one of {', '.join(MODALITIES)}, got {r.modality!r}")
        if r.vector is None:
            raise InputError(f"item {r.id!r} has no vector")
        vec = self.space.check_vectors(r.vector, what=f"the vector of item {r.id!r}")
        if vec.shape[0] != 1:
            raise InputError(f"item {r.id!r}: one vector per item, got {vec.shape[0]}")
        vec = l2_normalize(vec)[0] if self.space.normalized else vec[0]
        return encode_record(replace(_token_checked(r), vector=vec, metadata=check_metadata(r.metadata),
                                     reference=str(r.reference)))

    def _plan_ids(self, ids: Sequence[Any] | None, keys: list[str], modality: str) -> list[str]:
        given = _per_item(ids, len(keys), "ids")
        return [str(g) if g is not None else make_id(modality, k) for g, k in zip(given, keys)]

    def _write(self, planned: list[_Planned], modality: str, on_error: str, **embed: Any) -> AddResult:
        """Skip items whose content and metadata are stored already, embed the rest and write them in batches."""
        result = AddResult(ids=[p.record.id for p in planned])
        existing = {r.id: decode_record(r) for r in self.backend.get([p.record.id for p in planned])}
        todo: list[_Planned] = []
        refresh: list[Record] = []
        for p in planned:
            old = existing.get(p.record.id)
            if old is None or old.content_hash != p.record.content_hash or old.modality != p.record.modality:
                todo.append(p)
            elif (dict(old.metadata), old.reference, old.text) == (dict(p.record.metadata), p.record.reference,
                                                                   p.record.text):
                result.unchanged += 1
            else:
                refresh.append(p.record)
        if refresh:  # new metadata for unchanged content: reuse the stored vectors
            stored = {r.id: r for r in self.backend.get([r.id for r in refresh], vectors=True)}
            self.upsert([replace(r, vector=stored[r.id].vector, sparse=stored[r.id].sparse,
                                 multivector=stored[r.id].multivector) for r in refresh])
            result.updated += len(refresh)
        if not todo:
            return result
        model = self._need_model(f"embed {modality} items")
        sources = [p.source for p in todo]
        if modality == "image":
            batches = model.iter_images(sources, on_error="skip", **embed)
        elif modality == "text":
            batches = model.iter_texts(sources, on_error="skip")
        else:
            batches = model.iter_pairs([s[0] for s in sources], [s[1] for s in sources], on_error="skip", **embed)
        for batch in batches:
            for f in batch.failures:
                p = todo[f.index]
                if on_error == "raise":
                    raise f.error.at(p.index) if f.error.index is None else f.error
                result.ids[p.index] = None
                result.failures.append(Failure(index=p.index, input=f.input, error=f.error))
            records = [replace(todo[i].record, vector=v) for i, v in zip(batch.indices.tolist(), batch.vectors)]
            if self.backend_holds_token_vectors:
                records = with_token_vectors(model, records)
            for r in records:
                if r.id in existing:
                    result.updated += 1
                else:
                    result.added += 1
            if records:
                self.upsert(records)
        return result

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
        images = _as_list(images, "images")
        refs = self._image_refs(images, references)
        metas = _per_item(metadata, len(images), "metadata")
        item_ids = self._plan_ids(ids, refs, "image")
        planned = [
            _Planned(i, Record(item_ids[i], "image", refs[i], content_hash=self._hash_image(images[i], refs[i]),
                               metadata=check_metadata(metas[i])), images[i])
            for i in range(len(images))
        ]
        return self._write(planned, "image", on_error, batch_size=batch_size, workers=workers)

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
        texts = _as_list(texts, "texts")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"texts[{i}] is a {type(t).__name__}, not a string", index=i)
        given = _per_item(references, len(texts), "references")
        refs = [g if g is not None else t for g, t in zip(given, texts)]
        metas = _per_item(metadata, len(texts), "metadata")
        item_ids = self._plan_ids(ids, refs, "text")
        planned = [
            _Planned(i, Record(item_ids[i], "text", refs[i], text=texts[i], content_hash=hash_text(texts[i]),
                               metadata=check_metadata(metas[i])), texts[i])
            for i in range(len(texts))
        ]
        return self._write(planned, "text", on_error)

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
        images = _as_list(images, "images")
        texts = _as_list(texts, "texts")
        if len(images) != len(texts):
            raise InputError(f"add_pairs needs as many texts as images ({len(texts)} texts, {len(images)} images)")
        refs = self._image_refs(images, references)
        metas = _per_item(metadata, len(images), "metadata")
        item_ids = self._plan_ids(ids, [f"{r}\n{t}" for r, t in zip(refs, texts)], "pair")
        weight = "" if image_weight is None else f"\nw={float(image_weight)}"
        planned = [
            _Planned(i, Record(item_ids[i], "pair", refs[i], text=texts[i],
                               content_hash=hash_text(self._hash_image(images[i], refs[i]) + "\n" + texts[i] + weight),
                               metadata=check_metadata(metas[i])), (images[i], texts[i]))
            for i in range(len(images))
        ]
        return self._write(planned, "pair", on_error, image_weight=image_weight, batch_size=batch_size,
                           workers=workers)

    def _image_refs(self, images: list[Any], references: Sequence[str | None] | None) -> list[str]:
        given = _per_item(references, len(images), "references")
        refs = []
        for i, (img, ref) in enumerate(zip(images, given)):
            if ref is not None:
                refs.append(str(ref))
            elif isinstance(img, (str, os.PathLike)):
                refs.append(self.reference_for(img))
            else:
                raise InputError(
                    f"image #{i} ({describe_input(img)}) is not a file, so it needs a reference saying where it "
                    "can be found again: pass references=[...] (the store keeps references, never image bytes)",
                    input=describe_input(img), index=i,
                )
        return refs

    @staticmethod
    def _hash_image(image: Any, ref: str) -> str:
        try:
            return hash_image_input(image)
        except OSError:
            return hash_text("missing:" + ref)  # embedding will fail and name the file

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
        if text is not None and image is not None:
            if pair is not None:
                raise ConfigError("give text and image (a pair), or pair=, not both")
            pair, text, image = (image, text), None, None
        given = [k for k, v in (("text", text), ("image", image), ("pair", pair), ("vector", vector), ("like", like))
                 if v is not None]
        if len(given) != 1:
            raise ConfigError("search needs exactly one query: text=, image=, text= with image= (a pair), pair=, "
                              f"vector= or like=; got {', '.join(given) or 'none'}")
        if vector is not None:
            vec = self.space.check_vectors(vector, what="the query vector")
            if vec.shape[0] != 1:
                raise InputError(f"one query vector at a time, got {vec.shape[0]}")
        elif like is not None:
            vec = np.asarray(self.get(like, vector=True).vector, dtype=np.float32)[None, :]
        elif text is not None:
            if not isinstance(text, str):
                raise InputError(f"text must be a string, got {type(text).__name__}")
            vec = self._need_model("search by text").embed_texts([text])
        elif image is not None:
            vec = self._need_model("search by image").embed_images([image])
        else:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InputError("pair must be (image, text)")
            vec = self._need_model("search by pair").embed_pairs([pair[0]], [pair[1]], image_weight=image_weight)
        return l2_normalize(vec)[0]

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
        """
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ConfigError(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
        selection = self._selection(modality, where)
        if using != "dense" or rerank is not None:
            return search_signals(
                self.backend, using=using, top_k=top_k, selection=selection, text=text, image=image, pair=pair,
                like=like, keywords=keywords, hit=self._hit, fusion=fusion, rerank=rerank, model=self.model,
                dense_vector=lambda: self.query_vector(text=text, image=image, pair=pair, vector=vector, like=like,
                                                       image_weight=image_weight))
        if keywords is not None:
            raise ConfigError("keywords= is for using='keyword' or 'hybrid'; a dense search has no keyword part")
        vec = self.query_vector(text=text, image=image, pair=pair, vector=vector, like=like, image_weight=image_weight)
        found = self.backend.query(vec, top_k + (1 if like is not None else 0), selection)
        hits = [self._hit(r, s) for r, s in found if r.id != like]
        return hits[:top_k]

    def _hit(self, r: Record, score: float) -> Hit:
        r = decode_record(r)
        path = None
        if r.modality in ("image", "pair"):
            resolved = self.resolve(r.reference)
            path = str(resolved) if resolved is not None else None
        return Hit(id=r.id, score=float(score), modality=r.modality, reference=r.reference,
                   metadata=dict(r.metadata), text=r.text, path=path)
