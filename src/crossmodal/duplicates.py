"""Duplicates in a collection: items with the same content, and items whose vectors are nearly the same.

Two tiers, within one modality:

* **exact**: the same content hash (the same file bytes, or the same text), wherever it is stored;
* **near**: cosine similarity of at least a threshold (default :data:`DEFAULT_THRESHOLD`), found among each
  item's nearest neighbours in the collection's own index (no all-pairs comparison), every pair confirmed
  with the exact stored vectors.

A group is a connected set of such links: if a is a duplicate of b and b of c, all three are one group.
:func:`hide_duplicates` keeps, of search hits, only those that no better hit duplicates, so the best hit of
every group is always kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .errors import ConfigError, ItemNotFound
from .stores.base import Hit
from .stores.filters import Selection


class Collection(Protocol):
    """What duplicate finding needs of a collection: its store backend (a protocol, so no import of the collection)."""

    backend: Any

__all__ = ["DEFAULT_NEIGHBOURS", "DEFAULT_THRESHOLD", "MAX_GROUP", "DuplicateGroup", "duplicate_group",
           "find_duplicates", "hide_duplicates"]

#: cosine at or above which two items are near-duplicates, for CLIP-like models on unit vectors: a resized,
#: recompressed or slightly cropped copy of a photo stays above it, two different photos of one scene fall below
DEFAULT_THRESHOLD = 0.95
#: how many nearest neighbours of each item are examined
DEFAULT_NEIGHBOURS = 16
#: the most items :func:`duplicate_group` gathers into one group
MAX_GROUP = 1_000


@dataclass(frozen=True)
class DuplicateGroup:
    """Items that duplicate each other. ``kind``: ``"exact"`` when they all have the same content, else ``"near"``;
    ``similarity``: the lowest cosine of the links that make the group (1.0 for an exact group)."""

    kind: str
    modality: str
    ids: tuple[str, ...]
    references: tuple[str, ...]
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "modality": self.modality, "similarity": round(self.similarity, 6),
                "items": [{"id": i, "reference": r} for i, r in zip(self.ids, self.references)]}


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ConfigError(f"the duplicate threshold must be a cosine similarity in (0, 1], got {threshold!r}")
    return float(threshold)


class _Groups:
    """Union-find over item ids, remembering each group's weakest link."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.weakest: dict[str, float] = {}

    def find(self, a: str) -> str:
        parent = self.parent.setdefault(a, a)
        while parent != self.parent[parent]:
            self.parent[parent] = self.parent[self.parent[parent]]
            parent = self.parent[parent]
        self.parent[a] = parent
        return parent

    def link(self, a: str, b: str, score: float) -> None:
        ra, rb = self.find(a), self.find(b)
        weakest = min(score, self.weakest.get(ra, 1.0), self.weakest.get(rb, 1.0))
        if ra != rb:
            ra, rb = min(ra, rb), max(ra, rb)
            self.parent[rb] = ra
            self.weakest.pop(rb, None)
        self.weakest[ra] = weakest

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for a in self.parent:
            out[self.find(a)].append(a)
        return out


def find_duplicates(collection: Collection, threshold: float = DEFAULT_THRESHOLD, *,
                    modality: str | None = None, neighbours: int = DEFAULT_NEIGHBOURS,
                    progress: Callable[[int, int], None] | None = None) -> list[DuplicateGroup]:
    """Every group of duplicates (see the module docstring), largest first; ``progress(done, total)`` as the
    near tier goes through the items."""
    threshold = check_threshold(threshold)
    if isinstance(neighbours, bool) or not isinstance(neighbours, int) or neighbours < 1:
        raise ConfigError(f"neighbours must be a positive integer, got {neighbours!r}")
    mods = None if modality in (None, "all") else (modality,)
    backend = collection.backend
    groups = _Groups()
    by_hash: dict[tuple[str, str], list[str]] = defaultdict(list)
    info: dict[str, tuple[str, str, str]] = {}  # id -> (modality, reference, content hash)
    for r in backend.scan(Selection(modalities=mods)):
        info[r.id] = (r.modality, r.reference, r.content_hash)
        if r.content_hash:
            by_hash[(r.modality, r.content_hash)].append(r.id)
    for ids in by_hash.values():
        for other in ids[1:]:
            groups.link(ids[0], other, 1.0)
    for a, b, score in backend.near_pairs(threshold, neighbours, mods, progress):
        if a in info and b in info:  # (an item added while the scan ran is left for the next run)
            groups.link(a, b, min(score, 1.0))
    out = []
    for root, ids in groups.groups().items():
        if len(ids) < 2:
            continue
        ids.sort()
        hashes = {info[i][2] for i in ids}
        exact = len(hashes) == 1 and "" not in hashes
        out.append(DuplicateGroup(kind="exact" if exact else "near", modality=info[ids[0]][0], ids=tuple(ids),
                                  references=tuple(info[i][1] for i in ids),
                                  similarity=1.0 if exact else groups.weakest.get(root, 1.0)))
    out.sort(key=lambda g: (-len(g.ids), g.ids[0]))
    return out


def _unit(vector: Any) -> np.ndarray | None:
    if vector is None:
        return None
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else None


def duplicate_group(collection: Collection, item_id: str, threshold: float = DEFAULT_THRESHOLD, *,
                    limit: int = MAX_GROUP) -> tuple[DuplicateGroup | None, dict[str, float]]:
    """The group of duplicates that holds ``item_id`` (None when it has none) and each member's cosine to it.

    The group is gathered from the item outwards: every member's neighbours of its modality with a cosine of
    at least ``threshold`` (asked for until the farthest returned falls below it), or with the same content,
    confirmed with the exact stored vectors; at most ``limit`` members. Exact duplicates have the same vector,
    so they are among the nearest neighbours.
    """
    threshold = check_threshold(threshold)
    backend = collection.backend
    found = backend.get([item_id], vectors=True)
    if not found:
        raise ItemNotFound(f"no item {item_id!r} in this collection")
    first = found[0]
    origin = _unit(first.vector)
    members = {first.id: first}
    weakest = 1.0
    todo = [first]
    while todo and len(members) < limit:
        r = todo.pop(0)
        vec = _unit(r.vector)
        if vec is None:
            continue
        ask = 2 * DEFAULT_NEIGHBOURS
        while True:
            near = backend.query(vec, ask, Selection(modalities=(r.modality,)))
            if len(near) < ask or near[-1][1] < threshold or ask >= 4 * limit:
                break
            ask *= 2
        fresh = [c.id for c, score in near if c.id not in members and score >= threshold - 0.01]
        for c in backend.get(fresh, vectors=True) if fresh else []:
            cv = _unit(c.vector)
            score = float(np.dot(vec, cv)) if cv is not None else -1.0
            same = bool(r.content_hash) and c.content_hash == r.content_hash
            if (score >= threshold or same) and c.id not in members and len(members) < limit:
                members[c.id] = c
                weakest = min(weakest, 1.0 if same else min(score, 1.0))
                todo.append(c)
    if len(members) < 2:
        return None, {first.id: 1.0}
    ids = sorted(members)
    hashes = {members[i].content_hash for i in ids}
    exact = len(hashes) == 1 and "" not in hashes
    similarity = {}
    for i in ids:
        v = _unit(members[i].vector)
        similarity[i] = 1.0 if i == first.id else (
            round(float(np.dot(origin, v)), 6) if origin is not None and v is not None else 0.0)
    group = DuplicateGroup(kind="exact" if exact else "near", modality=first.modality, ids=tuple(ids),
                           references=tuple(members[i].reference for i in ids), similarity=1.0 if exact else weakest)
    return group, similarity


def hide_duplicates(hits: Sequence[Hit], vectors: Iterable[np.ndarray | None], hashes: Iterable[str],
                    threshold: float) -> list[Hit]:
    """The hits (best first) that no better kept hit duplicates: same modality and content, or cosine >= threshold."""
    kept: list[tuple[Hit, np.ndarray | None, str]] = []
    for hit, vec, content in zip(hits, vectors, hashes):
        if vec is not None:
            norm = float(np.linalg.norm(vec))
            vec = vec / norm if norm > 0 else None
        duplicate = any(hit.modality == h.modality and ((content and content == c) or (
            vec is not None and v is not None and float(np.dot(vec, v)) >= threshold)) for h, v, c in kept)
        if not duplicate:
            kept.append((hit, vec, content))
    return [h for h, _, _ in kept]
