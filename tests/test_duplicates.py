"""Duplicate groups equal a brute-force computation; hiding duplicates in search keeps each group's best hit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossmodal import Record
from crossmodal.duplicates import find_duplicates
from crossmodal.errors import ConfigError
from crossmodal.store import open_store

from .stores.embedded.test_store import SpaceOnly, clustered

DIM = 32
THRESHOLD = 0.95


def planted(seed: int = 0) -> tuple[list[Record], np.ndarray]:
    """600 clustered items; 40 of them with 1-3 near copies (cosine > 0.98 to each other); 10 exact copies
    (the same content hash and vector under another id); a few pairs just below and above the threshold."""
    rng = np.random.default_rng(seed)
    base = clustered(600, DIM, seed=seed)
    vectors, hashes, mods = list(base), [f"sha256:{i}" for i in range(600)], [("image", "text")[i % 2] for i in range(600)]
    for i in rng.choice(600, 40, replace=False):
        for c in range(int(rng.integers(1, 4))):
            v = base[i] + 0.02 * rng.standard_normal(DIM).astype(np.float32)
            vectors.append(v / np.linalg.norm(v))
            hashes.append(f"sha256:{i}-near{c}")
            mods.append(mods[i])
    for i in rng.choice(600, 10, replace=False):
        vectors.append(base[i].copy())
        hashes.append(hashes[i])
        mods.append(mods[i])
    for j, cos in enumerate((0.94, 0.96)):  # around the threshold: an orthogonal step of the right size
        i = int(rng.integers(0, 600))
        step = rng.standard_normal(DIM).astype(np.float32)
        step -= (step @ base[i]) * base[i]
        step /= np.linalg.norm(step)
        vectors.append(cos * base[i] + np.sqrt(1 - cos**2) * step)
        hashes.append(f"sha256:edge{j}")
        mods.append(mods[i])
    x = np.stack(vectors).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    records = [Record(f"i{k:04d}", mods[k], f"file{k}.png", x[k], content_hash=hashes[k]) for k in range(len(x))]
    return records, x


def brute_force(records: list[Record], x: np.ndarray, threshold: float) -> set[frozenset[str]]:
    n = len(records)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    sims = x @ x.T
    for a in range(n):
        for b in range(a + 1, n):
            same_kind = records[a].modality == records[b].modality
            if same_kind and (sims[a, b] >= threshold or records[a].content_hash == records[b].content_hash):
                parent[find(a)] = find(b)
    groups: dict[int, set[str]] = {}
    for k in range(n):
        groups.setdefault(find(k), set()).add(records[k].id)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


@pytest.mark.parametrize("uri", ["embedded", "memory://"])
def test_duplicate_groups_equal_brute_force(tmp_path: Path, uri: str) -> None:
    records, x = planted()
    # exact_limit=100 puts every modality on its HNSW index in the embedded store; memory: one query per item
    st = open_store(tmp_path / "s", exact_limit=100) if uri == "embedded" else open_store(uri)
    col = st.collection("c", model=SpaceOnly(DIM))
    col.upsert(records)
    calls: list[tuple[int, int]] = []
    groups = find_duplicates(col, THRESHOLD, progress=lambda done, total: calls.append((done, total)))
    expected = brute_force(records, x, THRESHOLD)
    assert len(expected) == 50 and any(f"i{len(records) - 1:04d}" in g for g in expected)  # the 0.96 pair, not 0.94
    assert {frozenset(g.ids) for g in groups} == expected
    assert calls and calls[-1][0] == calls[-1][1] == len(records)
    by_id = {r.id: r for r in records}
    for g in groups:
        assert len({by_id[i].modality for i in g.ids}) == 1 and g.modality == by_id[g.ids[0]].modality
        if g.kind == "exact":
            assert len({by_id[i].content_hash for i in g.ids}) == 1 and g.similarity == 1.0
        else:
            assert THRESHOLD <= g.similarity <= 1.0
    assert [len(g.ids) for g in groups] == sorted((len(g.ids) for g in groups), reverse=True)
    assert col.duplicates(THRESHOLD, modality="text") == [g for g in groups if g.modality == "text"]
    with pytest.raises(ConfigError, match="threshold"):
        col.duplicates(1.5)
    st.close()


@pytest.mark.parametrize("exact_limit", [100, 10_000])
def test_near_pairs_across_pages_are_each_reported_once_with_their_exact_cosine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exact_limit: int) -> None:
    from crossmodal.stores.embedded import neighbours

    monkeypatch.setattr(neighbours, "PAGE", 16)  # copies are appended last: most pairs span pages
    records, x = planted(seed=4)
    st = open_store(tmp_path / "s", exact_limit=exact_limit)  # 100: on HNSW; 10,000: exact views
    col = st.collection("c", model=SpaceOnly(DIM))
    col.upsert(records)
    pairs = list(col.backend.near_pairs(THRESHOLD, 16))
    sims = x @ x.T
    expected = {(records[a].id, records[b].id) for a in range(len(records)) for b in range(a + 1, len(records))
                if records[a].modality == records[b].modality and sims[a, b] >= THRESHOLD}
    assert len(pairs) == len({(a, b) for a, b, _ in pairs}) == len(expected) > 100
    assert {(a, b) for a, b, _ in pairs} == expected
    row = {r.id: k for k, r in enumerate(records)}
    for a, b, score in pairs:
        np.testing.assert_allclose(score, sims[row[a], row[b]], atol=1e-5)
    st.close()


def test_near_pairs_of_an_exact_view_are_among_each_items_nearest(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base = clustered(200, DIM, seed=5)
    copies = base[7] + 0.03 * rng.standard_normal((8, DIM)).astype(np.float32)  # 9 items, all pairs above 0.95
    x = np.concatenate([base, copies / np.linalg.norm(copies, axis=1, keepdims=True)])
    records = [Record(f"i{k:03d}", "image", f"f{k}.png", x[k], content_hash=f"sha256:{k}") for k in range(len(x))]
    st = open_store(tmp_path / "s")  # 209 items: an exact view
    col = st.collection("c", model=SpaceOnly(DIM))
    col.upsert(records)
    sims = x @ x.T
    for neighbours in (2, 16):
        expected = set()
        for a in range(len(x)):
            for b in np.argsort(-sims[a])[:neighbours + 1]:  # itself and its nearest
                if b != a and sims[a, b] >= THRESHOLD:
                    expected.add((records[min(a, b)].id, records[max(a, b)].id))
        found = [(a, b) for a, b, _ in col.backend.near_pairs(THRESHOLD, neighbours)]
        assert sorted(found) == sorted(expected)
        members = {"i007", *(f"i{k}" for k in range(200, 208))}  # 36 pairs; each item's 2 nearest leave out some
        group = {(a, b) for a, b in expected if a in members and b in members}
        assert len(group) == 36 if neighbours == 16 else 9 <= len(group) < 36
    st.close()


def test_hide_duplicates_keeps_the_best_hit_of_every_group(tmp_path: Path) -> None:
    records, x = planted(seed=1)
    st = open_store(tmp_path / "s", exact_limit=100)
    col = st.collection("c", model=SpaceOnly(DIM))
    col.upsert(records)
    group_of = {i: g for g in brute_force(records, x, THRESHOLD) for i in g}
    queries = [x[k] for k in range(600, 640)] + list(clustered(10, DIM, seed=7))
    for q in queries:
        full = col.search(vector=q, top_k=200)
        shown = col.search(vector=q, top_k=10, hide_duplicates=True)
        seen: set[frozenset[str]] = set()
        expected = []
        for h in full:  # walking the full ranking: the first (best) hit of each group is the one shown
            g = group_of.get(h.id, frozenset([h.id]))
            if g not in seen:
                seen.add(g)
                expected.append(h.id)
        assert [h.id for h in shown] == expected[:10]
    st.close()


@pytest.mark.parametrize("uri", ["embedded", "memory://"])
def test_the_group_of_one_item_equals_brute_force(tmp_path: Path, uri: str) -> None:
    records, x = planted(seed=2)
    st = open_store(tmp_path / "s", exact_limit=100) if uri == "embedded" else open_store(uri)
    col = st.collection("c", model=SpaceOnly(DIM))
    col.upsert(records)
    expected = brute_force(records, x, THRESHOLD)
    group_of = {i: g for g in expected for i in g}
    by_id = {r.id: r for r in records}
    row = {r.id: k for k, r in enumerate(records)}
    asked = sorted({min(g) for g in expected}) + sorted({max(g) for g in expected})[:10]
    for item in asked:
        group, similarity = col.duplicates_of(item, THRESHOLD)
        assert group is not None and frozenset(group.ids) == group_of[item], item
        assert group.modality == by_id[item].modality
        exact = len({by_id[i].content_hash for i in group.ids}) == 1
        assert group.kind == ("exact" if exact else "near")
        assert similarity[item] == 1.0
        for i in group.ids:
            np.testing.assert_allclose(similarity[i], float(x[row[item]] @ x[row[i]]), atol=1e-5)
        assert THRESHOLD <= group.similarity <= 1.0
    alone = next(r.id for r in records if r.id not in group_of)
    assert col.duplicates_of(alone, THRESHOLD) == (None, {alone: 1.0})
    from crossmodal.errors import ItemNotFound

    with pytest.raises(ItemNotFound, match="nope"):
        col.duplicates_of("nope")
    with pytest.raises(ConfigError, match="threshold"):
        col.duplicates_of(asked[0], 0.0)
    st.close()


def test_hide_duplicates_in_a_keyword_search_keeps_the_best_hit_of_every_group(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    words = ["red apple", "green pear", "ripe red cherry", "blue plum", "red pepper"]
    base = clustered(len(words), DIM, seed=3)
    records = []
    for k, (text, v) in enumerate(zip(words, base)):
        records.append(Record(f"t{k}", "text", text, v, text=text, content_hash=f"sha256:{k}"))
        copy = v + 0.01 * rng.standard_normal(DIM).astype(np.float32)  # a near copy of each, with the same words
        records.append(Record(f"t{k}-copy", "text", text, copy / np.linalg.norm(copy), text=text,
                              content_hash=f"sha256:{k}-copy"))
    st = open_store(tmp_path / "s")
    col = st.collection("c", model=SpaceOnly(DIM))
    col.upsert(records)
    full = col.search("red", using="keyword", top_k=10)
    assert len(full) == 6  # three texts with "red", each twice
    shown = col.search("red", using="keyword", top_k=10, hide_duplicates=True)
    seen: set[str] = set()
    expected = []
    for h in full:
        root = h.id.removesuffix("-copy")
        if root not in seen:
            seen.add(root)
            expected.append(h.id)
    assert [h.id for h in shown] == expected and len(expected) == 3
    st.close()
