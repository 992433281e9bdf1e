"""mode="fast": int8 graphs that stay within the fidelity bounds of exact, built once and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossmodal
from crossmodal.errors import SpaceMismatch
from crossmodal.models.verify import MIN_COSINE, MIN_OVERLAP, compare_modes
from crossmodal.runtimes import quantize

from ..conftest import IMAGES, shared_images

FAMILIES = ["clip", "siglip", "chinese_clip"]


def captions() -> list[str]:
    rows = (IMAGES / "captioned" / "captions.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [row.split("\t")[1] for row in rows] + ["一条龙", "x", "a dog " * 30]


def _assert_within_bounds(exact, fast) -> None:
    images, texts = shared_images(), captions()
    report = compare_modes(exact, fast, images, texts)
    # Every single test image and caption, not just on average.
    cos_img = np.sum(exact.embed_images(images) * fast.embed_images(images), axis=1)
    cos_txt = np.sum(exact.embed_texts(texts) * fast.embed_texts(texts), axis=1)
    assert cos_img.min() >= MIN_COSINE, report.lines()
    assert cos_txt.min() >= MIN_COSINE, report.lines()
    assert report.text_to_image_overlap >= MIN_OVERLAP and report.image_to_image_overlap >= MIN_OVERLAP, report.lines()
    assert report.passed
    assert cos_img.min() < 1.0 or cos_txt.min() < 1.0  # the fast graphs really are different graphs


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_mode_stays_within_the_fidelity_bounds(family: str, request: pytest.FixtureRequest, model_cache: Path) -> None:
    root = request.getfixturevalue(f"tiny_{family}_onnx_dir")
    exact = crossmodal.load_model(root, cache_dir=model_cache)
    fast = crossmodal.load_model(root, mode="fast", cache_dir=model_cache)
    _assert_within_bounds(exact, fast)


@pytest.mark.slow
def test_fast_mode_stays_within_the_bounds_on_the_full_size_architecture(tmp_path: Path, clip_bpe: bytes) -> None:
    from crossmodal.models.export import export_onnx
    from crossmodal.testing.models import build_model

    src = build_model(tmp_path / "vit-b-32", family="clip", size="base", seed=0, bpe=clip_bpe)
    export_onnx(src, tmp_path / "onnx")
    exact = crossmodal.load_model(tmp_path / "onnx", cache_dir=tmp_path / "cache")
    fast = crossmodal.load_model(tmp_path / "onnx", mode="fast", cache_dir=tmp_path / "cache")
    _assert_within_bounds(exact, fast)


def test_the_patch_embedding_rewrite_is_exact(tiny_clip_onnx_dir: Path, tiny_siglip_onnx_dir: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    for root in (tiny_clip_onnx_dir, tiny_siglip_onnx_dir):
        src = root / "onnx" / "vision_model.onnx"
        model = onnx.load(str(src))
        assert quantize.patch_conv_as_matmul(model) == 1
        assert not any(n.op_type == "Conv" for n in model.graph.node)
        onnx.save(model, str(tmp_path / "patched.onnx"))
        before = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
        after = ort.InferenceSession(str(tmp_path / "patched.onnx"), providers=["CPUExecutionProvider"])
        pixels = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
        a, b = before.run(None, {"pixel_values": pixels})[0], after.run(None, {"pixel_values": pixels})[0]
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, float(np.abs(a).max()))
        text = onnx.load(str(root / "onnx" / "text_model.onnx"))
        assert quantize.patch_conv_as_matmul(text) == 0


def test_int8_graphs_are_built_once_and_cached(tiny_clip_onnx_dir: Path, tmp_path: Path, monkeypatch) -> None:
    built: list[Path] = []
    real = quantize.quantize_graph

    def counting(src: Path, dst: Path) -> Path:
        built.append(src)
        return real(src, dst)

    monkeypatch.setattr(quantize, "quantize_graph", counting)
    first = crossmodal.load_model(tiny_clip_onnx_dir, mode="fast", cache_dir=tmp_path)
    assert sorted(p.name for p in built) == ["text_model.onnx", "vision_model.onnx"]
    second = crossmodal.load_model(tiny_clip_onnx_dir, mode="fast", cache_dir=tmp_path)
    assert len(built) == 2, "the cached int8 graphs were quantized again"
    texts = ["a dog", "a photo of a cat"]
    np.testing.assert_array_equal(first.embed_texts(texts), second.embed_texts(texts))
    graphs = sorted((tmp_path / "int8").rglob("*.onnx"))
    assert len(graphs) == 2 and not list((tmp_path / "int8").rglob(".quantize-*"))


def test_fast_and_exact_are_different_spaces(tiny_clip_onnx_dir: Path, model_cache: Path) -> None:
    exact = crossmodal.load_model(tiny_clip_onnx_dir, cache_dir=model_cache)
    fast = crossmodal.load_model(tiny_clip_onnx_dir, mode="fast", cache_dir=model_cache)
    assert fast.space.mode == "fast" and exact.space.mode == "exact"
    with pytest.raises(SpaceMismatch, match="fast"):
        exact.space.check_same(fast.space)
