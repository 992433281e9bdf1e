"""The one modality dispatch: a mixed list of inputs -> one row per input, in order, each kind embedded by the model."""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal.dispatch import embed_inputs, group_inputs, iter_inputs
from crossmodal.errors import InputError
from crossmodal.inputs import Input, query_kind

from .server.helpers import png_bytes


def test_a_mixed_list_gets_the_rows_each_kind_gets_alone_in_input_order(fake_model):
    red, blue = png_bytes((250, 0, 0)), png_bytes((0, 0, 250))
    inputs = [Input.of(text="a cat"), Input.of(image=red), Input.of(image=blue, text="at night", image_weight=0.25),
              Input.of(text="a dog"), Input.of(image=blue), Input.of(image=red, text="at night")]
    got = embed_inputs(fake_model, inputs)
    texts = fake_model.embed_texts(["a cat", "a dog"])
    images = fake_model.embed_images([red, blue])
    want = np.stack([texts[0], images[0], fake_model.embed_pairs([blue], ["at night"], image_weight=0.25)[0], texts[1],
                     images[1], fake_model.embed_pairs([red], ["at night"])[0]])
    np.testing.assert_allclose(got, want, atol=1e-6)
    groups = group_inputs(inputs)  # pairs of another image weight are another group
    assert [(g.kind, g.image_weight, g.positions) for g in groups] == [
        ("text", None, (0, 3)), ("image", None, (1, 4)), ("pair", 0.25, (2,)), ("pair", None, (5,))]


def test_failures_name_their_position_in_the_list(fake_model):
    inputs = [Input.of(text="fine"), Input.of(image=b"not an image"), Input.of(image=png_bytes()),
              Input.of(image=b"nor this", text="x")]
    skipped = embed_inputs(fake_model, inputs, on_error="skip")
    assert skipped.indices.tolist() == [0, 2] and [f.index for f in skipped.failures] == [1, 3]
    np.testing.assert_allclose(skipped.vectors[1], fake_model.embed_images([png_bytes()])[0], atol=1e-6)
    with pytest.raises(InputError, match="input #1"):
        embed_inputs(fake_model, inputs)
    kinds = [b.kind for b in iter_inputs(fake_model, inputs)]
    assert kinds[0] == "text" and set(kinds) == {"text", "image", "pair"}


def test_an_input_is_a_text_an_image_or_a_pair():
    assert Input.of(text="a").kind == "text" and Input.of(image=b"x", text="a").kind == "pair"
    assert Input.of(image="cat.jpg", text="at night").label == "pair:cat.jpg|at night"
    for bad in (lambda: Input.of(), lambda: Input("pair", text="no image"), lambda: Input("video", text="x")):
        with pytest.raises(InputError):
            bad()


def test_which_kind_of_query_is_decided_in_one_place():
    assert query_kind(text="a") == query_kind(image=b"x") == query_kind(text="a", image=b"x") == "input"
    assert query_kind(pair=(b"x", "a")) == "input" and query_kind(vector=[0.1]) == "vector"
    assert query_kind(like="id-1") == "like"
    assert query_kind() is None and query_kind(text="a", vector=[1.0]) is None
    assert query_kind(text="a", pair=(b"x", "a")) is None
