"""crossmodal's Visualized-BGE equals BAAI's ``Visualized_BGE`` (eval mode) on the same seeded weights.

Both runtimes (torch and the ONNX export) against the reference's ``encode``
(one image per call) and its batch APIs ``encode_mm`` / ``encode_image``, on
texts in English and Chinese, photos of several modes, and pairs. Measured:
max |diff| about 1e-7 on unit vectors; the bound is 1e-5.
"""

from __future__ import annotations

import numpy as np

from .inputs import LONGEST_PAIR_TEXT, PAIR_TEXTS, PHOTOS, TEXTS, TOO_LONG_PAIR_TEXT

ATOL = 1e-5


def _close(ours: np.ndarray, ref: np.ndarray) -> float:
    assert ours.shape == ref.shape
    diff = float(np.abs(ours - ref).max())
    assert diff <= ATOL, diff
    return diff


def test_texts_equal_the_reference(visualized, visualized_reference) -> None:
    ours = visualized.embed_texts(TEXTS)
    _close(ours, visualized_reference["text"])
    _close(ours, visualized_reference["text_batch"])


def test_images_equal_the_reference(visualized, visualized_reference) -> None:
    ours = visualized.embed_images(PHOTOS)
    _close(ours, visualized_reference["image"])
    _close(ours[:2], visualized_reference["image_batch"])


def test_pairs_equal_the_reference(visualized, visualized_reference) -> None:
    ours = visualized.embed_pairs(PHOTOS, PAIR_TEXTS)
    _close(ours, visualized_reference["pair"])
    _close(ours[:2], visualized_reference["pair_batch"])
    # The fused vector is not the image vector: the text changes it.
    assert np.abs(ours - visualized_reference["image"]).max() > 1e-3


def test_vectors_are_unit_norm(visualized) -> None:
    for vectors in (visualized.embed_texts(TEXTS[:2]), visualized.embed_images(PHOTOS[:1])):
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_token_ids_equal_the_reference_tokenizer(visualized, visualized_reference) -> None:
    texts = [*TEXTS, *PAIR_TEXTS, ""]
    assert [visualized.tokenizer.ids(t) for t in texts] == visualized_reference.meta["tokens"]


def test_longest_pair_text_equals_the_reference_and_one_more_token_crashes_it(visualized, visualized_reference) -> None:
    """The reference never truncates: 316 text tokens fill the 512 positions after 196 image tokens, 317 crash it.

    crossmodal cuts the 317-token text to 316 (start and end tokens kept), which is
    exactly the longest text the reference can take.
    """
    longest = visualized.embed_pairs(PHOTOS[:1], [LONGEST_PAIR_TEXT])
    _close(longest, visualized_reference["longest_pair"])
    error = visualized_reference.error("too_long_pair")
    assert error is not None and error["error"] == "IndexError", error
    _close(visualized.embed_pairs(PHOTOS[:1], [TOO_LONG_PAIR_TEXT]), visualized_reference["longest_pair"])


def test_rotary_tables_are_the_ones_the_reference_computes(visualized_reference) -> None:
    from crossmodal.testing.bge import rope_tables

    cos, sin = rope_tables(head_dim=64, grid=14)
    assert np.array_equal(cos.numpy(), visualized_reference["rope_cos"])
    assert np.array_equal(sin.numpy(), visualized_reference["rope_sin"])


def test_the_reference_is_random_until_put_in_eval_mode(visualized_reference) -> None:
    """Why users see different vectors per call (FlagEmbedding #659): ``Visualized_BGE`` stays in training mode.

    EVA02-CLIP-B-16's config sets ``patch_dropout: 0.5``, so in training mode half
    the patches are dropped at random.
    """
    meta = visualized_reference.meta
    assert meta["training_after_construction"] is True
    assert meta["patch_dropout"] == 0.5
    diag = meta["diagnostics"]
    assert diag["train_mode_image_tokens"] == 1 + 98 and diag["eval_mode_image_tokens"] == 1 + 196
    assert diag["train_mode_run_diff"] > 1e-3
    assert meta["env_RoPE"] == "1"  # the reference also sets a process-wide environment variable


def test_reference_batch_apis_agree_with_one_at_a_time(visualized_reference) -> None:
    """The reference's own batch paths (``encode_mm``, ``encode_image``) equal its one-image ``encode``."""
    ref = visualized_reference
    np.testing.assert_allclose(ref["pair_batch"], ref["pair"][:2], atol=1e-6)
    np.testing.assert_allclose(ref["image_batch"], ref["image"][:2], atol=1e-6)
    np.testing.assert_allclose(ref["text_batch"], ref["text"], atol=1e-6)
