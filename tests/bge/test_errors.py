"""Bad checkpoints and bad inputs get crossmodal errors that name what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from crossmodal.errors import ConfigError, EmptyText, ImageDecodeError, ModelLoadError, TextTooLong

from .inputs import PHOTOS, TOO_LONG_PAIR_TEXT


def _copy(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir()
    for path in src.iterdir():
        if path.name not in skip:
            shutil.copy2(path, dst / path.name)
    return dst


@pytest.mark.parametrize("missing", [("sparse_linear.pt",), ("colbert_linear.pt",), ("colbert_linear.pt", "sparse_linear.pt")])
def test_missing_m3_head_file_is_an_error_naming_it_unless_only_dense_is_asked(
        m3_dir: Path, tmp_path: Path, missing: tuple[str, ...]) -> None:
    """The reference silently uses random heads instead (both, if either file is missing)."""
    from crossmodal.bge.m3 import load_m3
    from crossmodal.bge.onnx_export import export_m3
    from crossmodal.bge.onnx_run import load_m3_onnx
    from crossmodal.bge.torch_graphs import load_m3_encoder

    root = _copy(m3_dir, tmp_path / "m3", skip=missing)
    texts = ["a photo of a cat", "一只猫"]
    expected = load_m3_encoder(m3_dir).encode(texts).dense
    exported = export_m3(load_m3(root), root, tmp_path / "onnx")
    for enc in (load_m3_encoder(root), load_m3_onnx(exported)):
        assert np.abs(enc.encode(texts).dense - expected).max() <= 1e-5
        for output in ("sparse", "colbert"):
            with pytest.raises(ModelLoadError) as info:
                enc.encode(texts, **{output: True})
            for name in missing:
                assert name in str(info.value)


def test_heads_false_skips_the_head_files(m3_dir: Path) -> None:
    from crossmodal.bge.torch_graphs import load_m3_encoder

    full = load_m3_encoder(m3_dir)
    dense_only = load_m3_encoder(m3_dir, heads=False)
    texts = ["a photo of a cat", "一只猫"]
    np.testing.assert_array_equal(dense_only.encode(texts).dense, full.encode(texts).dense)
    with pytest.raises(ModelLoadError, match="colbert_linear.pt and sparse_linear.pt"):
        dense_only.encode(texts, sparse=True)


def test_head_file_of_the_wrong_shape_is_an_error(m3_dir: Path, tmp_path: Path) -> None:
    import torch

    from crossmodal.bge.m3 import load_m3

    root = _copy(m3_dir, tmp_path / "m3")
    torch.save({"weight": torch.zeros(1, 7), "bias": torch.zeros(1)}, root / "sparse_linear.pt")
    with pytest.raises(ModelLoadError, match="sparse_linear.pt"):
        load_m3(root)


def test_checkpoint_missing_a_tensor_is_an_error(visualized_dir: Path, tmp_path: Path) -> None:
    import torch

    from crossmodal.bge.visualized import load_visualized

    root = _copy(visualized_dir, tmp_path / "vis", skip=("Visualized_base_en_v1.5.pth",))
    state = torch.load(visualized_dir / "Visualized_base_en_v1.5.pth", weights_only=True)
    del state["model_visual.visual.blocks.1.attn.v_bias"]
    torch.save(state, root / "Visualized_base_en_v1.5.pth")
    with pytest.raises(ModelLoadError, match="missing 1 tensors"):
        load_visualized(root)


def test_text_config_disagreeing_with_the_checkpoint_is_an_error(visualized_dir: Path, tmp_path: Path) -> None:
    import json

    from crossmodal.bge.visualized import load_visualized

    root = _copy(visualized_dir, tmp_path / "vis")
    config = json.loads((root / "config.json").read_text())
    config["num_hidden_layers"] = 3
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="2 text encoder layers.*says 3"):
        load_visualized(root)


def test_directory_without_the_pth_is_an_error(visualized_dir: Path, tmp_path: Path) -> None:
    from crossmodal.bge.visualized import load_visualized

    root = _copy(visualized_dir, tmp_path / "vis", skip=("Visualized_base_en_v1.5.pth",))
    with pytest.raises(ModelLoadError, match=r"Visualized_\*\.pth"):
        load_visualized(root)


def test_over_long_pair_text_with_truncate_false_raises_text_too_long(visualized) -> None:
    with pytest.raises(TextTooLong) as info:
        visualized.embed_pairs(PHOTOS[:1], [TOO_LONG_PAIR_TEXT], truncate=False)
    assert "317 tokens" in str(info.value) and "316" in str(info.value)
    assert info.value.input == TOO_LONG_PAIR_TEXT and info.value.index == 0


def test_over_long_text_with_truncate_false_raises_text_too_long(visualized) -> None:
    text = " ".join(["cat"] * 600)
    with pytest.raises(TextTooLong, match="512"):
        visualized.embed_texts(["a cat", text], truncate=False)
    assert visualized.embed_texts([text]).shape == (1, 768)  # cut to 512 tokens by default


def test_over_long_m3_text_with_truncate_false_raises_text_too_long(m3) -> None:
    text = " ".join(["cat"] * 200)
    with pytest.raises(TextTooLong):
        m3.encode([text], truncate=False)
    assert m3.encode([text], colbert=True).colbert[0].shape[0] == 127  # 128 tokens, the start token dropped


def test_bad_inputs_name_themselves(visualized, tmp_path: Path) -> None:
    with pytest.raises(EmptyText):
        visualized.embed_texts(["a cat", "  "])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError, match="broken.jpg") as info:
        visualized.embed_images([PHOTOS[0], bad])
    assert info.value.index == 1
    with pytest.raises(ConfigError, match="2 images but 1 texts"):
        visualized.embed_pairs(PHOTOS[:2], ["a cat"])


def test_m3_options_are_validated(m3) -> None:
    with pytest.raises(ConfigError, match="at least one"):
        m3.encode(["a"], dense=False)
    with pytest.raises(ConfigError, match="max_tokens"):
        m3.encode(["a"], max_tokens=10_000)
    with pytest.raises(ConfigError, match="truncate_dim"):
        m3.encode(["a"], truncate_dim=0)


def test_empty_batches_give_empty_vectors(visualized) -> None:
    assert visualized.embed_texts([]).shape == (0, 768)
    assert visualized.embed_images([]).shape == (0, 768)
    assert visualized.embed_pairs([], []).shape == (0, 768)


def test_empty_batches_give_empty_m3_outputs(m3) -> None:
    out = m3.encode([], sparse=True, colbert=True)
    assert out.dense.shape == (0, 64) and out.sparse == [] and out.colbert == []
