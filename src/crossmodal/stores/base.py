"""The store protocol: what any backend (embedded, memory, pgvector, Qdrant) implements.

A *store* holds named collections; a *collection backend* holds items of one
embedding space. The :class:`~crossmodal.collection.Collection` on top does
everything that needs a model (embedding, space checks, ids, hashing); a
backend only stores and searches vectors, so a new backend is one module (or
one package) implementing the two small protocols below and passing the
contract tests in ``tests/stores/test_contract.py``.

A backend's collection class subclasses :class:`BackendBase` and writes the
core: ``upsert``, ``delete``, ``get``, ``count``, ``query`` and ``scan``.
Everything else has a default there, which a backend overrides when it can do
better:

* ``replace(records, ids)`` (a move: new items in, old ones out): the default
  upserts first and then deletes, so a crash in between leaves both rather
  than neither; every built-in backend makes it one atomic step;
* ``bulk_load()``: a context manager around a large load into an empty
  collection (default: nothing; pgvector drops its HNSW index and builds it
  once at the end);
* ``declare_indexes(keys)``: metadata keys that filters use often (default:
  nothing; Qdrant builds payload indexes for them);
* ``maintain()``: bring derived indexes up to date and save them now
  (default: nothing; the embedded store saves its HNSW files, which it
  otherwise does every so often while writing and on close);
* ``keyword(terms, top_k, selection)``: BM25 keyword search over each item's
  terms (:mod:`~crossmodal.stores.keywords`); the default reads every
  selected item, and each built-in backend answers from its own index
  (SQLite FTS5, a PostgreSQL ``tsvector`` GIN index, a Qdrant sparse vector).
* ``near_pairs(threshold, neighbours)``: pairs of items at least this
  similar, for near-duplicate detection (default: one search per item; the
  embedded store searches its HNSW indexes in batches on every core).

A store class subclasses :class:`StoreBase` and writes create, open, list,
update and drop; ``check`` (default: counts only) and ``close`` (default:
nothing) are optional. Two capabilities are class attributes the rest of
crossmodal asks instead of looking at URI schemes: ``shared`` (several
processes or machines may write at once, as distributed ingest needs) and
``kind`` (what to call the store in messages).

Rules every backend keeps:

* ids are strings (at most 512 characters); a backend that needs other ids
  (Qdrant: UUIDs) maps them and returns ours.
* vectors are float32 and unit-norm (the collection normalizes them before
  they arrive), so the score is the dot product, which is the cosine.
* ``upsert`` is atomic per call: after a crash either all its records are
  there or none; an upsert with an existing id replaces that item.
* strings arrive as valid Unicode (the collection encodes file names that
  are not, see :mod:`~crossmodal.stores.codec`).
* a :class:`Selection` (modalities + a :mod:`~crossmodal.stores.filters`
  filter) is evaluated exactly like :func:`~crossmodal.stores.filters.select`
  would evaluate it on the item.
* ``query`` returns the ``top_k`` best items by score, best first, ties by id;
  an approximate backend must reach recall@10 >= 0.98 against exact search.
* a backend whose client library is an optional extra raises
  :class:`~crossmodal.errors.StoreUnavailable` naming the extra when its
  package is imported without it (:func:`require_extra`).
"""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from ..errors import StoreUnavailable
from ..space import Space
from .filters import Selection, select
from .frozen import direct_init
from .keywords import bm25_scores, record_terms
from .validation import MAX_ID_LENGTH, MODALITIES, check_metadata, check_modalities, valid_id

__all__ = [
    "MAX_ID_LENGTH",
    "MODALITIES",
    "BackendBase",
    "CheckReport",
    "CollectionBackend",
    "CollectionInfo",
    "Hit",
    "Modality",
    "Record",
    "Selection",
    "StoreBase",
    "VectorStore",
    "check_metadata",
    "check_modalities",
    "maxsim",
    "maxsim_many",
    "require_extra",
    "valid_id",
]

Modality = Literal["image", "text", "pair"]


@dataclass(frozen=True)
class CollectionInfo:
    """What a store records about one collection."""

    name: str
    space: Space
    #: folder that relative image references resolve against (None: references are absolute or URIs)
    root: str | None = None
    #: what to pass to ``load_model`` to get this space's model back (a catalog name or a directory)
    model_source: str | None = None
    created: float = 0.0
    #: metadata keys whose values keyword search matches as text (besides texts, captions and file names)
    text_keys: tuple[str, ...] = ()
    #: values per row of the model's multi-vectors (None: it has none, or the collection predates them); Qdrant
    #: needs it to create the collection's multi-vector
    multivector_dim: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "space": self.space.to_dict(), "root": self.root,
               "model_source": self.model_source, "created": self.created}
        if self.text_keys:
            out["text_keys"] = list(self.text_keys)
        if self.multivector_dim is not None:
            out["multivector_dim"] = self.multivector_dim
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectionInfo:
        return cls(name=str(data["name"]), space=Space.from_dict(data["space"]), root=data.get("root"),
                   model_source=data.get("model_source"), created=float(data.get("created") or 0.0),
                   text_keys=tuple(data.get("text_keys") or ()),
                   multivector_dim=None if data.get("multivector_dim") is None else int(data["multivector_dim"]))


@direct_init
@dataclass(frozen=True)
class Record:
    """One stored item.

    ``reference`` says where the item came from: an image path (relative to
    the collection's root) or URI, or for a text the text itself (for a text
    read from a file, the file's path). ``text`` is the text of text items and
    the caption of pair items. ``content_hash`` is a digest of the content
    (``sha256:...``). Items ingested from files also record their ``source``
    (the file, as a reference: relative to the root when inside it) and its
    change ``stamp`` (``size:mtime_ns``), so a re-index skips unchanged files
    without reading them and finds the items of moved or deleted ones; both
    are ``""`` for items added directly.
    """

    id: str
    modality: str
    reference: str
    vector: np.ndarray | None = None
    text: str | None = None
    content_hash: str = ""
    source: str = ""
    stamp: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: a sparse (lexical) vector of the item's text, {token id: weight > 0}, when the model has one (BGE-M3)
    sparse: Mapping[int, float] | None = None
    #: one vector per token of the item's text (n, C), unit rows, when the model has them (ColBERT, BGE-M3)
    multivector: np.ndarray | None = None

    def without_vector(self) -> Record:
        """The record without its vectors (dense, sparse and multi-vector), as searches return items."""
        if self.vector is None and self.sparse is None and self.multivector is None:
            return self
        return replace(self, vector=None, sparse=None, multivector=None)


@direct_init
@dataclass(frozen=True)
class Hit:
    """One search result. ``score`` is the cosine similarity to the query (higher is closer)."""

    id: str
    score: float
    modality: str
    reference: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    text: str | None = None
    #: absolute path of the image file, when the reference is a path (None for texts and URIs)
    path: str | None = None
    #: for keyword and hybrid searches: each signal that found the item and its score there ({"dense": 0.31,
    #: "keyword": 7.2}); empty for a dense search, whose score says it all
    signals: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "score": round(float(self.score), 6), "modality": self.modality,
               "reference": self.reference, "text": self.text, "path": self.path, "metadata": dict(self.metadata)}
        if self.signals:
            out["signals"] = {k: round(float(v), 6) for k, v in self.signals.items()}
        return out


@dataclass
class CheckReport:
    """What ``store check`` found.

    ``problems`` are integrity faults found; ``repairs`` what was done about
    them; ``unresolved`` the problems still there (not repairable, or
    ``repair=False``); ``notes`` ordinary housekeeping (an index caught up
    after a killed run, a stray temporary file removed). ``clean`` means no
    problems were found at all.
    """

    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    collections: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "problems": self.problems, "repairs": self.repairs,
                "unresolved": self.unresolved, "notes": self.notes, "collections": self.collections}


@runtime_checkable
class CollectionBackend(Protocol):
    """The items of one collection, in one backend: the core six methods, then four with defaults in
    :class:`BackendBase`."""

    info: CollectionInfo

    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace ``records`` (each with a vector) atomically."""

    def delete(self, ids: Sequence[str] | None = None, selection: Selection | None = None) -> int:
        """Delete the items with these ids, or (``ids=None``) those ``selection`` picks; return how many."""

    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[Record]:
        """The records with these ids that exist, in the order of ``ids``."""

    def count(self, selection: Selection | None = None) -> int:
        """How many items ``selection`` picks (all when None)."""

    def query(self, vector: np.ndarray, top_k: int, selection: Selection | None = None) -> list[tuple[Record, float]]:
        """The ``top_k`` items closest to the unit ``vector`` among those selected, best first, without vectors."""

    def scan(self, selection: Selection | None = None, *, vectors: bool = False) -> Iterator[Record]:
        """Every selected item, in a stable order (for ingest bookkeeping, exports and copies)."""

    def replace(self, records: Sequence[Record], ids: Sequence[str]) -> int:
        """Upsert ``records`` and delete the items with ``ids`` (none of them among ``records``) in one atomic
        step where the backend can; return how many were deleted."""

    def bulk_load(self) -> contextlib.AbstractContextManager[None]:
        """A context for loading many items into an empty collection (searches stay correct inside it)."""

    def declare_indexes(self, keys: Sequence[str]) -> None:
        """Metadata keys that filters use often (a hint: results never depend on it)."""

    def maintain(self) -> None:
        """Bring derived indexes up to date with the items and make them durable now."""

    def keyword(self, terms: Sequence[str], top_k: int, selection: Selection | None = None
                ) -> list[tuple[Record, float]]:
        """The ``top_k`` selected items best matching the keyword ``terms`` (BM25), best first, without vectors."""


class BackendBase(ABC):
    """What a collection backend inherits: the defaults of the optional methods of :class:`CollectionBackend`."""

    info: CollectionInfo
    #: whether the backend keeps records' sparse vectors and multi-vectors (``get``/``scan`` with ``vectors=True``
    #: return them); the collection neither computes them for, nor searches them in, a backend that does not (a
    #: backend may decide per collection: a Qdrant collection created before they were kept does not)
    holds_token_vectors: bool = False

    @abstractmethod
    def upsert(self, records: Sequence[Record]) -> None: ...

    @abstractmethod
    def delete(self, ids: Sequence[str] | None = None, selection: Selection | None = None) -> int: ...

    @abstractmethod
    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[Record]: ...

    @abstractmethod
    def count(self, selection: Selection | None = None) -> int: ...

    @abstractmethod
    def query(self, vector: np.ndarray, top_k: int, selection: Selection | None = None
              ) -> list[tuple[Record, float]]: ...

    @abstractmethod
    def scan(self, selection: Selection | None = None, *, vectors: bool = False) -> Iterator[Record]: ...

    def replace(self, records: Sequence[Record], ids: Sequence[str]) -> int:
        """Upsert, then delete: a crash in between leaves old and new items both, never neither."""
        self.upsert(records)
        return self.delete(ids) if ids else 0

    def bulk_load(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to prepare: writes inside are ordinary writes."""
        return contextlib.nullcontext()

    def declare_indexes(self, keys: Sequence[str]) -> None:  # noqa: B027 (a default, deliberately empty)
        """Nothing to declare: the backend filters every key equally well."""

    def maintain(self) -> None:  # noqa: B027 (a default, deliberately empty)
        """Nothing derived to save."""

    def keyword(self, terms: Sequence[str], top_k: int, selection: Selection | None = None
                ) -> list[tuple[Record, float]]:
        """The ``top_k`` selected items that best match the keyword ``terms`` by BM25, best first, ties by id;
        items matching no term are left out. This default reads every selected item (correct, and slow on a
        large collection); built-in backends answer from a keyword index."""
        if top_k <= 0 or not terms:
            return []
        every = list(self.scan())  # term statistics come from the whole collection, as in an index
        scores = bm25_scores(terms, [record_terms(r, self.info.text_keys) for r in every])
        chosen = every
        ranked = sorted((i for i, s in enumerate(scores) if s > 0 and select(every[i], selection)),
                        key=lambda i: (-scores[i], chosen[i].id))
        return [(chosen[i], float(scores[i])) for i in ranked[:top_k]]

    def near_pairs(self, threshold: float, neighbours: int, modalities: Sequence[str] | None = None,
                   progress: Any = None) -> Iterator[tuple[str, str, float]]:
        """Pairs of items of one modality whose vectors have cosine >= ``threshold``, as ``(id, id, cosine)``,
        each pair once: among each item's ``neighbours`` nearest, found with the backend's own search (one query
        per item). ``progress(done, total)`` is called as items are done."""
        selection = Selection(modalities=tuple(modalities) if modalities else None)
        total, done, seen = self.count(selection), 0, set()
        for r in self.scan(selection, vectors=True):
            for other, score in self.query(r.vector, neighbours + 1, Selection(modalities=(r.modality,))):
                pair = (min(r.id, other.id), max(r.id, other.id))
                if other.id != r.id and score >= threshold and pair not in seen:
                    seen.add(pair)
                    yield pair[0], pair[1], float(score)
            done += 1
            if progress is not None and (done % 256 == 0 or done == total):
                progress(done, total)

    def sparse_query(self, query: Mapping[int, float], top_k: int, selection: Selection | None = None
                     ) -> list[tuple[Record, float]]:
        """The ``top_k`` selected items with the largest dot product of their sparse vector with ``query`` (ids
        shared), best first, ties by id; items sharing no id are left out. This default reads every item."""
        if top_k <= 0 or not query:
            return []
        found = []
        for r in self.scan(selection, vectors=True):
            if r.sparse:
                score = sum(float(w) * float(r.sparse[i]) for i, w in query.items() if i in r.sparse)
                if score > 0:
                    found.append((r.without_vector(), score))
        found.sort(key=lambda rs: (-rs[1], rs[0].id))
        return found[:top_k]

    def multivectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored multi-vectors of these items (those that have one)."""
        return {r.id: np.asarray(r.multivector, dtype=np.float32) for r in self.get(ids, vectors=True)
                if r.multivector is not None}

    def maxsim(self, query: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        """MaxSim of the multi-vector ``query`` with each of these items that has a multi-vector: the mean over the
        query's rows of the best dot product with the item's rows (:func:`maxsim`). This default reads
        :meth:`multivectors`; Qdrant computes it with its own ``MAX_SIM`` comparator."""
        return maxsim_many(query, self.multivectors(ids))


def maxsim(query: np.ndarray, item: np.ndarray) -> float:
    """Mean over the query's vectors of the best dot product with the item's vectors (0 for an empty one)."""
    q = np.asarray(query, dtype=np.float32)
    d = np.asarray(item, dtype=np.float32)
    if q.size == 0 or d.size == 0:
        return 0.0
    return float(np.mean(np.max(q @ d.T, axis=1)))


def maxsim_many(query: np.ndarray, items: Mapping[str, np.ndarray]) -> dict[str, float]:
    """:func:`maxsim` of ``query`` with each of ``items``, in one matrix product over all their rows."""
    q = np.asarray(query, dtype=np.float32)
    names = [i for i, m in items.items() if np.size(m)]
    out = {i: 0.0 for i, m in items.items() if not np.size(m)}
    if not names or q.size == 0:
        return {i: 0.0 for i in items}
    mats = [np.asarray(items[i], dtype=np.float32) for i in names]
    starts = np.cumsum([0] + [len(m) for m in mats[:-1]])
    best = np.maximum.reduceat(np.concatenate(mats) @ q.T, starts, axis=0)  # (items, query rows)
    out.update(zip(names, best.mean(axis=1).astype(np.float64).tolist()))
    return out


@runtime_checkable
class VectorStore(Protocol):
    """A place that holds named collections (one directory, one database, one server)."""

    uri: str

    @property
    def shared(self) -> bool:
        """Whether several processes and machines may write this store at once (distributed ingest needs it)."""

    @property
    def kind(self) -> str:
        """What the store is, in words ("the embedded store"), for messages."""

    def create_collection(self, info: CollectionInfo) -> CollectionBackend:
        """Create a collection; :class:`~crossmodal.errors.CollectionExists` if the name is taken."""

    def open_collection(self, name: str) -> CollectionBackend:
        """Open a collection; :class:`~crossmodal.errors.CollectionNotFound` if there is none by that name."""

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection, sorted by name."""

    def update_collection(self, info: CollectionInfo) -> None:
        """Record a changed root or model source (the space never changes)."""

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its items."""

    def check(self, *, repair: bool = True) -> CheckReport:
        """Verify integrity and (with ``repair``) rebuild whatever is derived."""

    def close(self) -> None:
        """Make derived state durable and release files and connections."""


class StoreBase(ABC):
    """What a store inherits: its capabilities (class attributes, so they are known before it is opened) and
    the defaults of ``check`` and ``close``."""

    uri: str
    #: several processes and machines may write at once (a database server); False for one-machine stores
    shared: ClassVar[bool] = False
    #: the store in words, for messages ("the embedded store")
    kind: ClassVar[str] = "a store"

    @abstractmethod
    def create_collection(self, info: CollectionInfo) -> CollectionBackend: ...

    @abstractmethod
    def open_collection(self, name: str) -> CollectionBackend: ...

    @abstractmethod
    def list_collections(self) -> list[CollectionInfo]: ...

    @abstractmethod
    def update_collection(self, info: CollectionInfo) -> None: ...

    @abstractmethod
    def drop_collection(self, name: str) -> None: ...

    def check(self, *, repair: bool = True) -> CheckReport:
        """Nothing derived to verify: the report counts each collection's items."""
        return CheckReport(collections={i.name: self.open_collection(i.name).count() for i in self.list_collections()})

    def close(self) -> None:  # noqa: B027 (a default, deliberately empty)
        """Nothing to release."""


def require_extra(modules: Sequence[str], *, store: str, extra: str) -> None:
    """Import a backend's client ``modules`` (which come with ``pip install 'crossmodal[EXTRA]'``), or raise the
    :class:`~crossmodal.errors.StoreUnavailable` that names the extra to install. Backend packages call it first."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            detail = f"{exc.name} is missing" if exc.name else (str(exc).splitlines() or ["it failed"])[0][:200]
            raise StoreUnavailable(f"the {store} store needs the {extra!r} extra, which is not installed ({detail}): "
                                   f"pip install 'crossmodal[{extra}]'") from exc
