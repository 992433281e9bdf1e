"""Duplicates over HTTP: searches that hide them give the library's hits, and an item's group is the library's."""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal import Record
from crossmodal.store import open_store

from ..helpers import client_for, error_code

DIM = 16  # the fake model's


@pytest.fixture
def store(fake_model):
    """40 texts in the fake model's space; 8 of them with a near copy (cosine > 0.99), 3 with an exact copy."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((5, DIM))
    x = (centres[rng.integers(0, 5, 40)] + 0.8 * rng.standard_normal((40, DIM))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    records = [Record(f"n{k:02d}", "text", f"note {k}", x[k], text=f"note {k}", content_hash=f"sha256:{k}")
               for k in range(40)]
    for k in range(8):
        v = x[k] + 0.02 * rng.standard_normal(DIM).astype(np.float32)
        records.append(Record(f"n{k:02d}-near", "text", f"note {k}, again", v / np.linalg.norm(v),
                              text=f"note {k}, again", content_hash=f"sha256:{k}-near"))
    for k in range(10, 13):
        records.append(Record(f"n{k:02d}-same", "text", f"note {k}", x[k], text=f"note {k}",
                              content_hash=f"sha256:{k}"))
    s = open_store("memory://")
    s.collection("notes", fake_model).upsert(records)
    return s


def test_search_hiding_duplicates_matches_the_library(fake_model, store):
    col = store.collection("notes", fake_model)
    q = col.get("n00", vector=True).vector
    full = [h.id for h in col.search(vector=q, top_k=20)]
    assert "n00-near" in full  # the near copy would be shown without hiding
    with client_for(fake_model, store=store) as client:
        for body, library in [({"hide_duplicates": True}, {"hide_duplicates": True}),
                              ({"hide_duplicates": True, "duplicate_threshold": 0.999}, {"hide_duplicates": 0.999}),
                              ({"hide_duplicates": False}, {})]:
            response = client.post("/v1/collections/notes/search", json={"vector": q.tolist(), "top_k": 20, **body})
            assert response.status_code == 200, response.text
            expected = [h.id for h in col.search(vector=q, top_k=20, **library)]
            assert [h["id"] for h in response.json()["hits"]] == expected
        hidden = [h["id"] for h in client.post("/v1/collections/notes/search", json={
            "vector": q.tolist(), "top_k": 20, "hide_duplicates": True}).json()["hits"]]
        assert hidden[0] == full[0] and "n00-near" not in hidden and len(hidden) == 20
        for bad in ({"duplicate_threshold": 0.9}, {"hide_duplicates": True, "duplicate_threshold": 1.5},
                    {"hide_duplicates": True, "duplicate_threshold": 0}):
            response = client.post("/v1/collections/notes/search", json={"vector": q.tolist(), **bad})
            assert response.status_code == 422 and "duplicate_threshold" in response.text, bad


def test_the_group_of_an_item(fake_model, store):
    col = store.collection("notes", fake_model)
    with client_for(fake_model, store=store) as client:
        near = client.get("/v1/collections/notes/duplicates/n03")
        assert near.status_code == 200, near.text
        body = near.json()
        assert body["collection"] == "notes" and body["id"] == "n03" and body["threshold"] == 0.95
        group = body["group"]
        assert group["kind"] == "near" and group["modality"] == "text"
        assert [i["id"] for i in group["items"]][:1] == ["n03"] and group["items"][0]["similarity"] == 1.0
        expected, similarity = col.duplicates_of("n03")
        assert {i["id"] for i in group["items"]} == set(expected.ids) >= {"n03", "n03-near"}
        assert all(abs(i["similarity"] - similarity[i["id"]]) < 1e-5 for i in group["items"])
        assert group["items"][1]["reference"] == col.get(group["items"][1]["id"]).reference
        exact = client.get("/v1/collections/notes/duplicates/n11-same").json()["group"]
        assert exact["kind"] == "exact" and {i["id"] for i in exact["items"]} == {"n11", "n11-same"}
        assert exact["similarity"] == 1.0
        strict = client.get("/v1/collections/notes/duplicates/n03", params={"threshold": 0.99999}).json()
        assert strict["group"] is None and strict["threshold"] == 0.99999
        lonely = next(r.id for r in col.items() if col.duplicates_of(r.id)[0] is None)
        assert client.get(f"/v1/collections/notes/duplicates/{lonely}").json()["group"] is None
        missing = client.get("/v1/collections/notes/duplicates/nope")
        assert missing.status_code == 404 and error_code(missing) == "item_not_found"
        assert client.get("/v1/collections/other/duplicates/n03").status_code == 404
        bad = client.get("/v1/collections/notes/duplicates/n03", params={"threshold": 2})
        assert bad.status_code == 422 and "threshold" in bad.text
