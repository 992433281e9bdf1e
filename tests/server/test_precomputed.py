"""Vectors the batcher made, handed to a collection: looked up by input; what changed since the check is embedded."""

from __future__ import annotations

import numpy as np

from crossmodal.errors import InputError
from crossmodal.server.precomputed import PrecomputedModel
from crossmodal.store import open_store

from .helpers import png_bytes


def test_inputs_come_from_the_table_and_one_missing_from_it_is_embedded_by_the_model(fake_model):
    made = fake_model.embed_texts(["kept"])[0] * 0 + 1  # a vector the model would never make: it came from the table
    table = {"kept": made, "bad": InputError("a bad text")}
    vectors = PrecomputedModel(fake_model, table)
    col = open_store("memory://").collection("c", vectors)
    result = col.add_texts(["kept", "bad", "new since the check"], on_error="skip")
    assert [f.index for f in result.failures] == [1] and result.added == 2
    np.testing.assert_allclose(col.get(result.ids[0], vector=True).vector, made / np.linalg.norm(made), atol=1e-6)
    np.testing.assert_allclose(col.get(result.ids[2], vector=True).vector,
                               fake_model.embed_texts(["new since the check"])[0], atol=1e-6)
    picture = png_bytes((10, 200, 30))
    pairs = col.add_pairs([picture], ["with a caption"], references=["upload://p"])
    np.testing.assert_allclose(col.get(pairs.ids[0], vector=True).vector,
                               fake_model.embed_pairs([picture], ["with a caption"])[0], atol=1e-6)
