"""Reference parity on the full-size architecture of openai/clip-vit-base-patch32 (slow: builds a 151M model).

The same property as tests/test_embedder.py::test_vectors_equal_the_reference, on ViT-B/32 with seeded
random weights in the hub's layouts: ONNX (the export) and PyTorch both within 1e-5 of transformers'
`get_*_features` + L2 normalization, preprocessed by transformers' own processor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossmodal

from .conftest import shared_images
from .test_embedder import TEXTS, _normalize, reference_vectors

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_clip(tmp_path_factory: pytest.TempPathFactory, clip_bpe: bytes) -> tuple[Path, Path]:
    from crossmodal.families import export_onnx
    from crossmodal.testing.models import build_model

    src = build_model(tmp_path_factory.mktemp("b32") / "hf", family="clip", size="base", bpe=clip_bpe)
    onnx = tmp_path_factory.mktemp("b32-onnx") / "onnx"
    export_onnx(src, onnx)
    return src, onnx


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_full_size_vit_b32_equals_the_reference(base_clip, runtime: str, images_dir: Path, model_cache: Path) -> None:
    src, onnx = base_clip
    photos = [p for p in shared_images() if p.suffix.lower() in (".jpg", ".jpeg", ".png")][:16]
    model = crossmodal.load_model(onnx if runtime == "onnx" else src, runtime=runtime, cache_dir=model_cache)
    assert model.dim == 512
    ref_text, ref_image = reference_vectors(src, "clip", TEXTS, photos)
    assert np.abs(model.embed_texts(TEXTS) - _normalize(ref_text)).max() <= 1e-5
    assert np.abs(model.embed_images(photos) - _normalize(ref_image)).max() <= 1e-5
