"""Texts are batched by length (padded only to the longest in each batch) and come back in input order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossmodal

WORDS = "the quick brown fox jumps over a lazy dog near two cats in the snow at night".split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 40)))) for _ in range(n)]


@pytest.fixture
def recording_model(tiny_clip_onnx_dir: Path, model_cache: Path):
    """The tiny CLIP, with every text batch's (rows, width) recorded."""
    model = crossmodal.load_model(tiny_clip_onnx_dir, cache_dir=model_cache)
    shapes: list[tuple[int, int]] = []
    encode = model.encoder.encode_texts

    def recording(inputs: dict[str, np.ndarray]) -> np.ndarray:
        shapes.append(inputs["input_ids"].shape)
        return encode(inputs)

    model.encoder.encode_texts = recording  # type: ignore[method-assign]
    model.shapes = shapes  # type: ignore[attr-defined]
    return model


def test_length_batches_equal_unbatched_vectors_in_input_order(recording_model) -> None:
    texts = _texts(70)
    batched = recording_model.embed_texts(texts, batch_size=8)
    alone = np.concatenate([recording_model.embed_texts([t], batch_size=1) for t in texts])
    assert batched.shape == (70, recording_model.dim)
    assert np.abs(batched - alone).max() <= 1e-6


def test_each_batch_is_padded_only_to_its_longest_text(recording_model) -> None:
    texts = _texts(64, seed=1)
    lengths = sorted(len(t.ids) for t in recording_model.tokenizer.tokenize(texts))
    recording_model.shapes.clear()
    recording_model.embed_texts(texts, batch_size=8)
    # Sorted by length: batch i holds the i-th group of 8 lengths, padded to its own maximum.
    expected = [(8, max(lengths[i : i + 8])) for i in range(0, 64, 8)]
    assert sorted(recording_model.shapes, key=lambda s: s[1]) == expected
    padded = sum(rows * width for rows, width in recording_model.shapes)
    assert padded < 1.2 * sum(lengths)


def test_streamed_batches_keep_input_positions_with_skipped_texts(recording_model) -> None:
    texts = _texts(50, seed=2)
    texts[7] = ""  # skipped
    texts[31] = "   "
    batches = list(recording_model.iter_texts(iter(texts), batch_size=4, on_error="skip"))
    indices = np.concatenate([b.indices for b in batches])
    np.testing.assert_array_equal(indices, [i for i in range(50) if i not in (7, 31)])
    assert [f.index for b in batches for f in b.failures] == [7, 31]
    vectors = np.concatenate([b.vectors for b in batches])
    good = [t for i, t in enumerate(texts) if i not in (7, 31)]
    assert np.abs(vectors - recording_model.embed_texts(good)).max() <= 1e-6
