"""Copying collections between stores (``crossmodal store copy``): vectors and everything else, no re-embedding.

The chain embedded -> PostgreSQL -> Qdrant -> embedded must give back the
items it started with (bit for bit through PostgreSQL; Qdrant renormalizes
unit vectors under cosine distance, within rounding), and an interrupted copy
must finish on a rerun without duplicates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import crossmodal
from crossmodal import Record
from crossmodal.cli.main import cli
from crossmodal.errors import CollectionNotFound, ConfigError, SpaceMismatch
from crossmodal.store import copy_collections
from crossmodal.stores import transfer
from crossmodal.testing.fake import fake_model

from .servers import open_qdrant_local, pg_store_uri

MODALITIES = ("image", "text", "pair")


def records(n: int, dim: int = 16, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [Record(f"item-{i:04d}", MODALITIES[i % 3], f"photos/{i}.jpg" if i % 3 != 1 else f"text {i}", vectors[i],
                   text=None if i % 3 == 0 else f"text {i}", content_hash=f"sha256:{i:064x}", source=f"src/{i}",
                   stamp=f"{i}:{i * 1000}", metadata={"n": i, "album": str(2020 + i % 4), "tags": ["a", "b"][: i % 3]})
            for i in range(n)]


def snapshot(store: crossmodal.Store, name: str) -> dict[str, tuple]:
    """Every field of every item, the vector bit for bit."""
    return {r.id: (r.modality, r.reference, r.text, r.content_hash, r.source, r.stamp, dict(r.metadata),
                   r.vector.tobytes()) for r in store.collection(name).items(vectors=True)}


def assert_same_items(store: crossmodal.Store, source: crossmodal.Store, name: str) -> None:
    """Every field equal; vectors within a float's rounding (Qdrant renormalizes what it stores under cosine)."""
    got, want = snapshot(store, name), snapshot(source, name)
    assert {k: v[:-1] for k, v in got.items()} == {k: v[:-1] for k, v in want.items()}
    for k, v in got.items():
        np.testing.assert_allclose(np.frombuffer(v[-1], np.float32), np.frombuffer(want[k][-1], np.float32),
                                   atol=1e-6)


@pytest.fixture
def source(tmp_path: Path):
    st = crossmodal.open_store(tmp_path / "embedded")
    col = st.collection("photos", model=fake_model(dim=16), root=tmp_path / "pictures")
    col.backend.upsert(records(300))
    st.collection("notes", model=fake_model(dim=8)).add_texts(["one note", "another note"])
    yield st
    st.close()


def test_embedded_to_postgres_to_qdrant_and_back_keeps_every_item(source, tmp_path: Path) -> None:
    before = {name: snapshot(source, name) for name in ("photos", "notes")}
    pg = crossmodal.open_store(pg_store_uri(tmp_path))
    qd = open_qdrant_local(tmp_path)
    back = crossmodal.open_store(tmp_path / "back")
    report = copy_collections(source, pg)
    assert report.copied == 302 and [c.name for c in report.collections] == ["notes", "photos"]
    copy_collections(pg, qd, batch_size=64)
    copy_collections(qd, back)
    for name in ("photos", "notes"):
        assert snapshot(pg, name) == before[name]
        assert_same_items(qd, source, name)
        assert_same_items(back, source, name)
    for st in (pg, qd, back):
        assert [i.to_dict() for i in st.collections()] == [i.to_dict() for i in source.collections()]
    # and the copies answer searches like the source
    q = records(300)[42].vector
    expected = [h.id for h in source.collection("photos").search(vector=q, top_k=10, where={"album": "2022"})]
    for st in (pg, qd, back):
        assert [h.id for h in st.collection("photos").search(vector=q, top_k=10, where={"album": "2022"})] == expected
    for st in (pg, qd, back):
        st.close()


def test_an_interrupted_copy_finishes_on_a_rerun_without_duplicates(source, tmp_path: Path) -> None:
    pg = crossmodal.open_store(pg_store_uri(tmp_path))

    def die_after_two_batches(name: str, done: int, total: int) -> None:
        if done >= 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_collections(source, pg, names=["photos"], batch_size=50, progress=die_after_two_batches)
    assert pg.collection("photos").count() == 100
    report = copy_collections(source, pg, names=["photos"], batch_size=50)
    assert report.collections[0].copied == 300 and not report.collections[0].created
    assert snapshot(pg, "photos") == snapshot(source, "photos")
    pg.close()


def test_a_destination_collection_of_another_space_is_refused(source, tmp_path: Path) -> None:
    qd = open_qdrant_local(tmp_path)
    qd.collection("photos", model=fake_model(dim=16, seed=3, name="other"))
    with pytest.raises(SpaceMismatch, match="other"):
        copy_collections(source, qd, names=["photos"])
    with pytest.raises(CollectionNotFound, match="nope"):
        copy_collections(source, qd, names=["nope"])
    qd.close()


def test_large_copies_into_postgres_build_the_index_once(source, tmp_path: Path, monkeypatch) -> None:
    from crossmodal.stores.pgvector import PgvectorCollection

    monkeypatch.setattr(transfer, "BULK_THRESHOLD", 100)
    built: list[int] = []
    original = PgvectorCollection.build_index

    def spy(self: PgvectorCollection) -> None:
        built.append(self.count())  # the index is built once, after every row is in
        original(self)

    monkeypatch.setattr(PgvectorCollection, "build_index", spy)
    pg = crossmodal.open_store(pg_store_uri(tmp_path))
    copy_collections(source, pg, names=["photos"])
    assert built == [300]
    report = pg.check()
    assert report.clean and not report.notes  # the index is there
    pg.close()


def test_store_copy_command(source, tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    result = CliRunner().invoke(cli, ["store", "copy", str(tmp_path / "embedded"), str(dst), "-c", "notes", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["copied"] == 2 and [c["name"] for c in report["collections"]] == ["notes"]
    with crossmodal.open_store(dst) as st:
        assert snapshot(st, "notes") == snapshot(source, "notes")
    missing = CliRunner().invoke(cli, ["store", "copy", str(tmp_path / "embedded"), str(dst), "-c", "nope"])
    assert missing.exit_code == 6 and "nope" in missing.output


def test_the_backend_level_copy_takes_backends_and_paths_stay_a_store_convenience(source, tmp_path: Path) -> None:
    dst = crossmodal.open_store("memory://")
    report = transfer.copy_collections(source.backend, dst.backend, names=["notes"])
    assert report.copied == 2 and snapshot(dst, "notes") == snapshot(source, "notes")
    with pytest.raises(ConfigError, match="same store"):
        transfer.copy_collections(dst.backend, dst.backend)
    # paths and URIs are opened (and closed) by crossmodal.store.copy_collections
    report = copy_collections(tmp_path / "embedded", tmp_path / "copy", names=["photos"], batch_size=128)
    assert report.copied == 300 and report.destination == str(tmp_path / "copy")
    with crossmodal.open_store(tmp_path / "copy") as st:
        assert snapshot(st, "photos") == snapshot(source, "photos")
    with pytest.raises(ConfigError, match="batch_size"):
        copy_collections(tmp_path / "embedded", tmp_path / "never", batch_size=0)
    assert not (tmp_path / "never").exists()  # refused before anything was opened


def token_snapshot(store: crossmodal.Store, name: str) -> dict[str, tuple]:
    """Each item's sparse vector (weights to float32) and multi-vector (float16 bytes)."""
    return {r.id: (None if r.sparse is None else {i: float(np.float32(w)) for i, w in sorted(r.sparse.items())},
                   None if r.multivector is None else np.asarray(r.multivector, np.float16).tobytes())
            for r in store.collection(name).items(vectors=True)}


def signal_results(col) -> dict[str, list]:
    """What each signal finds. BM25 scores differ by design between stores (Qdrant fixes the average length), so
    keyword and hybrid searches are compared by what they find: every item holding the words, the rare one first."""
    out: dict[str, list] = {}
    for using, rerank in (("dense", None), ("sparse", None), ("keyword", "multivector"), ("sparse", "multivector")):
        hits = col.search("old red road", using=using, rerank=rerank, top_k=8, where={"n": {"$lt": 50}})
        out[f"{using}+{rerank}"] = [(h.id, round(h.score, 4)) for h in hits]
    keyword = col.search("note7 road", using="keyword", top_k=100, where={"n": {"$lt": 50}})
    out["keyword"] = [keyword[0].text, sorted(h.id for h in keyword)]
    hybrid = col.search("note7", using="hybrid", top_k=3, where={"n": {"$lt": 50}})
    out["hybrid"] = [any(h.text.endswith(" note7") and {"keyword", "sparse"} <= set(h.signals) for h in hybrid)]
    return out


def test_copies_carry_keyword_sparse_and_multivector_data_between_every_store(tmp_path: Path) -> None:
    from crossmodal.testing.fake_tokens import fake_token_model

    model = fake_token_model(dim=16, token_dim=8)
    words = "cat dog old red road sea sky tree house blue".split()
    rng = np.random.default_rng(9)
    first = crossmodal.open_store(tmp_path / "embedded")
    first.collection("tok", model=model).add_texts(
        [" ".join(rng.choice(words, size=4)) + f" note{i}" for i in range(60)], metadata=[{"n": i} for i in range(60)])
    pg = crossmodal.open_store(pg_store_uri(tmp_path))
    qd = open_qdrant_local(tmp_path)
    back = crossmodal.open_store(tmp_path / "back")
    copy_collections(first, pg)
    copy_collections(pg, qd, batch_size=16)
    copy_collections(qd, back)
    want_tokens = token_snapshot(first, "tok")
    assert sum(v[0] is not None and v[1] is not None for v in want_tokens.values()) == 60
    want = signal_results(first.collection("tok", model=model))
    assert all(want.values()) and want["hybrid"] == [True] and want["keyword"][0].endswith(" note7")
    for st in (pg, qd, back):
        assert token_snapshot(st, "tok") == want_tokens
        assert st.collection("tok").info.multivector_dim == 8
        assert signal_results(st.collection("tok", model=model)) == want
    for st in (first, pg, qd, back):
        st.close()


def test_a_collection_that_never_recorded_its_multivector_size_copies_into_qdrant(tmp_path: Path) -> None:
    from dataclasses import replace

    from crossmodal.testing.fake_tokens import fake_token_model

    model = fake_token_model(dim=16, token_dim=8)
    src = crossmodal.open_store(tmp_path / "embedded")
    col = src.collection("tok", model=model)
    col.add_texts(["a red road", "a blue sea", "an old tree"])
    src.backend.update_collection(replace(col.info, multivector_dim=None))  # as an earlier crossmodal wrote it
    assert src.collection("tok").info.multivector_dim is None
    qd = open_qdrant_local(tmp_path)
    copy_collections(src, qd)
    assert qd.collection("tok").info.multivector_dim == 8
    expected = [(h.id, round(h.score, 5)) for h in src.collection("tok", model=model).search(
        "red sea", using="sparse", rerank="multivector")]
    got = qd.collection("tok", model=model).search("red sea", using="sparse", rerank="multivector")
    assert [(h.id, round(h.score, 5)) for h in got] == expected and len(expected) == 2
    src.close()
    qd.close()
