"""Spaces: vectors from two spaces never mix."""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal.errors import DimensionMismatch, InputError, SpaceMismatch
from crossmodal.space import Space, space_fingerprint


def test_fingerprint_covers_weights_preprocessing_and_mode() -> None:
    base = space_fingerprint("openai/clip-vit-base-patch32", "abc", "exact")
    assert base == space_fingerprint("openai/clip-vit-base-patch32", "abc", "exact")
    assert base != space_fingerprint("openai/clip-vit-base-patch32", "abc", "fast")
    assert base != space_fingerprint("openai/clip-vit-base-patch32", "abd", "exact")
    assert base != space_fingerprint("google/siglip-base-patch16-224", "abc", "exact")


def test_mismatch_errors_name_both_spaces() -> None:
    a = Space("clip-b32", 512, True, "aaaa")
    b = Space("siglip-b16", 768, True, "bbbb")
    a.check_same(Space.from_dict(a.to_dict()))
    with pytest.raises(SpaceMismatch, match=r"built in space clip-b32 .*aaaa.* but the model given is in space siglip-b16 .*bbbb"):
        a.check_same(b)
    with pytest.raises(DimensionMismatch, match=r"shape \(3, 768\), but space clip-b32 .* holds vectors of dim 512"):
        a.check_vectors(np.zeros((3, 768)))
    with pytest.raises(InputError, match="NaN"):
        a.check_vectors(np.full(512, np.nan))
    assert a.check_vectors(np.ones(512)).shape == (1, 512)
