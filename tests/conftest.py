"""Shared fixtures: seeded tiny models in the hub layouts (built once per session), a fake model, test images.

Models are built from seeded random weights (no downloads): CLIP with the real
CLIP BPE vocabulary, SigLIP with a SentencePiece vocabulary trained on the fly,
Chinese-CLIP with a generated WordPiece vocabulary. Each is exported to the
ONNX layout with ``crossmodal models export``'s code, which checks itself
against the source. ``trained_clip_dir`` is a tiny CLIP trained for under a
minute on generated shapes, for semantic tests: the same model the README's
demo trains (bit-identical on one machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "data" / "images"
ASSETS = ROOT / ".cache" / "test-assets"

# Tests never reach the real hub: hub tests point crossmodal at a local stand-in (tests/models/fake_hub.py).
os.environ.pop("HF_HUB_OFFLINE", None)


def shared_images() -> list[Path]:
    """Every real photo in ../shared/data/images (many formats)."""
    return sorted(p for p in IMAGES.rglob("*") if p.is_file() and p.suffix.lower() not in (".tsv", ".md"))


@pytest.fixture(scope="session")
def images_dir() -> Path:
    if not IMAGES.is_dir():
        pytest.fail(f"test images not found at {IMAGES}; ../shared must sit beside the checkout")
    return IMAGES


@pytest.fixture(scope="session")
def clip_bpe() -> bytes:
    from crossmodal.testing.models import find_clip_bpe

    return find_clip_bpe(search=[ASSETS])


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """crossmodal's cache for the test session (exports, int8 graphs)."""
    return tmp_path_factory.mktemp("crossmodal-cache")


def _build(tmp_path_factory: pytest.TempPathFactory, family: str, bpe: bytes | None) -> Path:
    from crossmodal.testing.models import build_model

    return build_model(tmp_path_factory.mktemp(f"tiny-{family}"), family=family, size="tiny", seed=0, bpe=bpe)


def _export(tmp_path_factory: pytest.TempPathFactory, src: Path) -> Path:
    from crossmodal.families import export_onnx

    out = tmp_path_factory.mktemp(src.name + "-onnx") / "model"
    export_onnx(src, out)
    return out


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory, clip_bpe: bytes) -> Path:
    return _build(tmp_path_factory, "clip", clip_bpe)


@pytest.fixture(scope="session")
def tiny_clip_onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Path:
    return _export(tmp_path_factory, tiny_clip_dir)


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory, "siglip", None)


@pytest.fixture(scope="session")
def tiny_siglip_onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_siglip_dir: Path) -> Path:
    return _export(tmp_path_factory, tiny_siglip_dir)


@pytest.fixture(scope="session")
def tiny_chinese_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory, "chinese_clip", None)


@pytest.fixture(scope="session")
def tiny_chinese_clip_onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_chinese_clip_dir: Path) -> Path:
    return _export(tmp_path_factory, tiny_chinese_clip_dir)


@pytest.fixture(scope="session")
def tiny_model(tiny_clip_onnx_dir: Path, model_cache: Path):
    """The tiny CLIP on the default (ONNX) runtime."""
    import crossmodal

    return crossmodal.load_model(tiny_clip_onnx_dir, cache_dir=model_cache)


@pytest.fixture(scope="session")
def trained_clip_dir(tmp_path_factory: pytest.TempPathFactory, clip_bpe: bytes) -> Path:
    """A tiny CLIP trained on generated shapes ("a red circle"), with the defaults the demo uses."""
    from crossmodal.testing.train import train_tiny_clip

    return train_tiny_clip(tmp_path_factory.mktemp("trained-clip"), bpe=clip_bpe)


@pytest.fixture(scope="session")
def trained_clip_onnx_dir(tmp_path_factory: pytest.TempPathFactory, trained_clip_dir: Path) -> Path:
    return _export(tmp_path_factory, trained_clip_dir)


@pytest.fixture(scope="session")
def trained_model(trained_clip_onnx_dir: Path, model_cache: Path):
    import crossmodal

    return crossmodal.load_model(trained_clip_onnx_dir, cache_dir=model_cache)


@pytest.fixture
def fake_model():
    """A deterministic fake (see crossmodal.testing.fake): real Model code, arithmetic encoder."""
    from crossmodal.testing.fake import fake_model

    return fake_model(dim=16)
