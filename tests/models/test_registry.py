"""Name resolution, hub downloads into a persistent cache, offline loading, and local layouts.

The hub is stood in for by a local HTTP server speaking its API (tests/models/fake_hub.py), so the real
``huggingface_hub`` download and cache code runs. The repos it serves hold seeded tiny models laid out
exactly like the hub repos the catalog names (Xenova/..., Qdrant/...-vision + -text, openai/...).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import crossmodal
from crossmodal.errors import ModelLoadError, ModelNotFound, ModelUnavailableOffline
from crossmodal.families import FAMILIES
from crossmodal.models.catalog import CATALOG
from crossmodal.models.registry import find_entry, looks_like_path, resolve

from .fake_hub import serve

TEXTS = ["a dog", "a red circle", "一条龙"]


@pytest.fixture(scope="module")
def base_dim_clip(tmp_path_factory: pytest.TempPathFactory, clip_bpe: bytes) -> tuple[Path, Path]:
    """A tiny CLIP with the catalog's dim (512), in the transformers layout and exported to ONNX."""
    from crossmodal.families import export_onnx
    from crossmodal.testing.models import build_model

    src = build_model(tmp_path_factory.mktemp("clip512") / "hf", family="clip", bpe=clip_bpe, projection_dim=512)
    onnx = tmp_path_factory.mktemp("clip512-onnx") / "onnx"
    export_onnx(src, onnx)
    return src, onnx


def _xenova_repo(onnx_dir: Path, out: Path) -> Path:
    """The layout of Xenova/clip-vit-base-patch32: onnx/*.onnx beside tokenizer.json etc., plus variants."""
    shutil.copytree(onnx_dir, out)
    (out / "crossmodal.json").unlink()  # hub repos don't carry our manifest
    (out / "onnx" / "text_model_fp16.onnx").write_bytes(b"a variant crossmodal must not download")
    (out / "onnx" / "vision_model_quantized.onnx").write_bytes(b"another variant")
    return out


def _qdrant_repos(onnx_dir: Path, out: Path) -> tuple[Path, Path]:
    """Qdrant/clip-ViT-B-32-vision and -text: one model.onnx each, with their own config files."""
    vision, text = out / "vision", out / "text"
    vision.mkdir(parents=True)
    text.mkdir(parents=True)
    shutil.copy(onnx_dir / "onnx" / "vision_model.onnx", vision / "model.onnx")
    shutil.copy(onnx_dir / "onnx" / "text_model.onnx", text / "model.onnx")
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(onnx_dir / name, vision / name)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        if (onnx_dir / name).exists():
            shutil.copy(onnx_dir / name, text / name)
    return vision, text


def test_catalog_names_download_once_then_load_offline(base_dim_clip, tmp_path: Path) -> None:
    src, onnx = base_dim_clip
    xenova = _xenova_repo(onnx, tmp_path / "xenova")
    cache = tmp_path / "cache"
    with serve({"Xenova/clip-vit-base-patch32": xenova}) as hub:
        model = crossmodal.load_model("openai/clip-vit-base-patch32", cache_dir=cache, hub_endpoint=hub.url)
        assert model.dim == 512 and model.name == "openai/clip-vit-base-patch32"
        downloaded = {p.name for p in (cache / "hub").rglob("*.onnx")}
        assert downloaded == {"vision_model.onnx", "text_model.onnx"}  # only what the runtime needs
        n = len(hub.requests)
        again = crossmodal.load_model("openai/clip-vit-base-patch32", cache_dir=cache, hub_endpoint=hub.url)
        assert len(hub.requests) == n, "a cached model must load without touching the hub"
    # The hub is gone now; the cache alone serves the model, with or without offline mode.
    for offline in (False, True):
        cached = crossmodal.load_model("openai/clip-vit-base-patch32", cache_dir=cache, offline=offline,
                                       hub_endpoint="http://127.0.0.1:9")
        np.testing.assert_array_equal(cached.embed_texts(TEXTS), model.embed_texts(TEXTS))
    local = crossmodal.load_model(onnx)
    assert np.abs(local.embed_texts(TEXTS) - again.embed_texts(TEXTS)).max() <= 1e-6


def test_all_packagings_of_the_same_weights_share_one_space(base_dim_clip, tmp_path: Path, images_dir: Path) -> None:
    src, onnx = base_dim_clip
    vision, text = _qdrant_repos(onnx, tmp_path / "qdrant")
    repos = {
        "Xenova/clip-vit-base-patch32": _xenova_repo(onnx, tmp_path / "xenova"),
        "openai/clip-vit-base-patch32": src,
        "Qdrant/clip-ViT-B-32-vision": vision,
        "Qdrant/clip-ViT-B-32-text": text,
    }
    cache = tmp_path / "cache"
    with serve(repos) as hub:
        xenova = crossmodal.load_model("openai/clip-vit-base-patch32", cache_dir=cache, hub_endpoint=hub.url)
        torch_model = crossmodal.load_model("openai/clip-vit-base-patch32", runtime="torch", cache_dir=cache,
                                            hub_endpoint=hub.url)
        qdrant = crossmodal.load_model("Qdrant/clip-ViT-B-32-vision", cache_dir=cache, hub_endpoint=hub.url)
    assert qdrant.name == "Qdrant/clip-ViT-B-32"
    assert xenova.space == torch_model.space
    assert xenova.space.fingerprint == qdrant.space.fingerprint
    image = images_dir / "formats" / "cat.jpg"
    for other in (torch_model, qdrant):
        assert np.abs(other.embed_texts(TEXTS) - xenova.embed_texts(TEXTS)).max() <= 1e-5
        assert np.abs(other.embed_images([image]) - xenova.embed_images([image])).max() <= 1e-5


def test_hub_failures_are_clear(base_dim_clip, tiny_clip_onnx_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelUnavailableOffline, match="crossmodal models download"):
        crossmodal.load_model("openai/clip-vit-base-patch32", cache_dir=cache, offline=True)
    with serve({}) as hub:
        with pytest.raises(ModelNotFound, match="no accessible repo 'acme/nothing'"):
            crossmodal.load_model("hf-hub:acme/nothing", cache_dir=cache, hub_endpoint=hub.url)
    with pytest.raises(ModelUnavailableOffline, match="model 'hf-hub:acme/nothing' is not in the model cache .* "
                                                      "could not be reached"):
        crossmodal.load_model("hf-hub:acme/nothing", cache_dir=cache, hub_endpoint="http://127.0.0.1:9")
    # A catalog model is named as it was asked for, never by the repos that happen to carry its files.
    for offline in (False, True):
        with pytest.raises(ModelUnavailableOffline) as info:
            crossmodal.load_model("openai/clip-vit-base-patch32", cache_dir=cache, offline=offline,
                                  hub_endpoint="http://127.0.0.1:9")
        assert "model 'openai/clip-vit-base-patch32' is not in the model cache" in str(info.value)
        assert "Xenova" not in str(info.value) and info.value.model == "openai/clip-vit-base-patch32"
        assert "local model directory" in str(info.value)
        assert ("offline mode is on" if offline else "ConnectionRefused") in info.value.reason
    # A repo whose files contradict the catalog entry (a 24-dim model under a 512-dim name) is refused.
    with serve({"Xenova/clip-vit-base-patch32": _xenova_repo(tiny_clip_onnx_dir, tmp_path / "x")}) as hub:
        with pytest.raises(ModelLoadError, match="dim 24, but the catalog expects clip of dim 512"):
            crossmodal.load_model("openai/clip-vit-base-patch32", cache_dir=cache, hub_endpoint=hub.url)


def test_hf_hub_names_outside_the_catalog(tiny_clip_onnx_dir: Path, tmp_path: Path) -> None:
    repo = _xenova_repo(tiny_clip_onnx_dir, tmp_path / "repo")
    with serve({"someone/tiny-clip": repo}) as hub:
        model = crossmodal.load_model("hf-hub:someone/tiny-clip", cache_dir=tmp_path / "c", hub_endpoint=hub.url)
    assert model.name == "someone/tiny-clip"
    assert np.abs(model.embed_texts(TEXTS) - crossmodal.load_model(tiny_clip_onnx_dir).embed_texts(TEXTS)).max() <= 1e-6


def test_local_directories_load_in_both_layouts(tiny_clip_dir: Path, tiny_clip_onnx_dir: Path, model_cache: Path) -> None:
    for name in (tiny_clip_onnx_dir, str(tiny_clip_onnx_dir), f"local-dir:{tiny_clip_onnx_dir}"):
        assert resolve(str(name), families=FAMILIES).files.layout == "onnx"
    assert resolve(str(tiny_clip_dir), families=FAMILIES, runtime="torch").files.layout == "transformers"
    # A transformers-layout directory also loads on the ONNX runtime: exported once (verified), then cached.
    model = crossmodal.load_model(tiny_clip_dir, cache_dir=model_cache)
    assert model.space == crossmodal.load_model(tiny_clip_onnx_dir).space
    with pytest.raises(ModelLoadError, match="needs a transformers-layout model"):
        crossmodal.load_model(tiny_clip_onnx_dir, runtime="torch")


def test_unknown_names_and_bad_directories(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="Did you mean 'openai/clip-vit-large-patch14'"):
        resolve("openai/clip-vit-large-patch41", families=FAMILIES)
    with pytest.raises(ModelNotFound, match="use 'hf-hub:acme/model'"):
        resolve("acme/model", families=FAMILIES)
    with pytest.raises(ModelNotFound, match="does not exist"):
        resolve(f"local-dir:{tmp_path / 'nope'}", families=FAMILIES)
    # A name written as a path is a directory that does not exist, never a hub repo to try.
    for name in ("./models/mine", "../mine", "~/no-such-model", str(tmp_path / "nope"), "a/b/c", "mine/", ".\\mine"):
        with pytest.raises(ModelNotFound, match=f"model directory {re.escape(repr(name))} does not exist") as info:
            resolve(name, families=FAMILIES)
        assert "hf-hub:" not in str(info.value)
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ModelNotFound, match="is a file, not a model directory"):
        resolve(str(tmp_path / "model.onnx"), families=FAMILIES)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="none of: a transformers model directory.*a Visualized-BGE directory.*a BGE-M3 directory.*notes.txt"):
        resolve(str(tmp_path / "empty"), families=FAMILIES)
    with pytest.raises(ModelLoadError, match="unknown runtime 'tensorrt'"):
        resolve(str(tmp_path / "empty"), families=FAMILIES, runtime="tensorrt")


def test_which_names_look_like_paths() -> None:
    for name in ("./m", "../m", "/m", "~/m", "~", ".", "a/b/c", "m/", "C:\\models\\m", "C:/m", ".\\m"):
        assert looks_like_path(name), name
    for name in ("openai/clip-vit-base-patch32", "acme/model", "clip-vit-base-patch32", "mine"):
        assert not looks_like_path(name), name


def test_catalog_entries_are_complete() -> None:
    for name, entry in CATALOG.items():
        spec = entry.spec
        assert find_entry(name) is entry and spec.dim > 0
        onnx = spec.source("onnx")
        assert onnx is not None and onnx.layout == "onnx", name
        for alias in entry.aliases:
            assert find_entry(alias) is entry
    assert find_entry("Xenova/clip-vit-base-patch32") is CATALOG["openai/clip-vit-base-patch32"]
    # Spaces follow weights: the Qdrant repackaging of OpenAI's B/32 shares its weights identity.
    assert CATALOG["Qdrant/clip-ViT-B-32"].weights == CATALOG["openai/clip-vit-base-patch32"].weights
    expected = {"openai/clip-vit-base-patch32", "openai/clip-vit-base-patch16", "openai/clip-vit-large-patch14",
                "google/siglip-base-patch16-224", "OFA-Sys/chinese-clip-vit-base-patch16", "Qdrant/clip-ViT-B-32"}
    assert expected <= set(CATALOG)
    json.dumps([e.spec.describe() for e in CATALOG.values()])
