"""The BAAI catalog entries resolve through the hub cache: fetched once, offline afterwards.

A local stand-in for the hub (tests/models/fake_hub.py) serves the seeded tiny
models split into the repos the entries name: ``BAAI/bge-visualized`` holds
only the ``.pth`` files, ``BAAI/bge-base-en-v1.5`` / ``BAAI/bge-m3`` the text
model's config and tokenizer (and M3's weights and heads).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from crossmodal.errors import ModelLoadError, ModelUnavailableOffline
from crossmodal.models.bge_catalog import BGE_CATALOG, fetch_bge, find_bge

from ..models.fake_hub import serve
from .inputs import PAIR_TEXTS, PHOTOS, TEXTS


def _split(src: Path, out: Path, pth: str) -> tuple[Path, Path]:
    """The seeded Visualized-BGE laid out as the hub has it: the .pth in one repo, the text model in another."""
    visual, text = out / "bge-visualized", out / "text"
    visual.mkdir(parents=True)
    shutil.copytree(src, text, ignore=shutil.ignore_patterns("*.pth"))
    shutil.copy(src / pth, visual / pth)
    (visual / "README.md").write_text("other checkpoints live here too")
    return visual, text


def _m3_hub_repo(src: Path, repo: Path) -> Path:
    """The seeded BGE-M3 as the hub's BAAI/bge-m3 has it: the weights as pytorch_model.bin."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(src, repo)
    torch.save(load_file(str(repo / "model.safetensors")), repo / "pytorch_model.bin")
    (repo / "model.safetensors").unlink()
    return repo


def test_entries_are_flat_data_with_unique_names() -> None:
    names = [e.name.lower() for e in BGE_CATALOG] + [a.lower() for e in BGE_CATALOG for a in e.aliases]
    assert len(names) == len(set(names))
    assert {e.family for e in BGE_CATALOG} == {"visualized_bge", "bge_m3"}
    assert find_bge("baai/bge-visualized-base-en-v1.5") is find_bge("Visualized_base_en_v1.5")
    assert find_bge("BAAI/bge-m3").checkpoint is None and find_bge("openai/clip-vit-base-patch32") is None


def test_visualized_bge_is_fetched_from_two_repos_once_then_loads_offline(visualized_dir: Path, visualized_torch,
                                                                         tmp_path: Path) -> None:
    from crossmodal.bge.torch_graphs import load_visualized_encoder

    entry = find_bge("BAAI/bge-visualized-base-en-v1.5")
    visual, text = _split(visualized_dir, tmp_path / "repos", "Visualized_base_en_v1.5.pth")
    cache = tmp_path / "cache"
    with serve({"BAAI/bge-visualized": visual, "BAAI/bge-base-en-v1.5": text}) as hub:
        files = fetch_bge(entry, cache_dir=cache, endpoint=hub.url)
        fetched = {p.name for p in cache.rglob("*") if p.is_file() and "snapshots" in p.parts}
        assert "README.md" not in fetched and "Visualized_base_en_v1.5.pth" in fetched  # only what the model needs
        n = len(hub.requests)
        assert fetch_bge(entry, cache_dir=cache, endpoint=hub.url) == files
        assert len(hub.requests) == n, "a cached model must resolve without touching the hub"
    for offline in (False, True):  # the hub is gone: the cache alone serves the model
        again = fetch_bge(entry, cache_dir=cache, offline=offline, endpoint="http://127.0.0.1:9")
        assert again == files
    encoder = load_visualized_encoder(files.root, weights=files.weights)
    np.testing.assert_array_equal(encoder.embed_texts(TEXTS[:3]), visualized_torch.embed_texts(TEXTS[:3]))
    np.testing.assert_array_equal(encoder.embed_pairs(PHOTOS[:1], PAIR_TEXTS[:1]),
                                  visualized_torch.embed_pairs(PHOTOS[:1], PAIR_TEXTS[:1]))


def test_bge_m3_is_fetched_once_then_loads_offline(m3_dir: Path, m3_torch, tmp_path: Path) -> None:
    from crossmodal.bge.torch_graphs import load_m3_encoder

    repo = _m3_hub_repo(m3_dir, tmp_path / "bge-m3")
    cache = tmp_path / "cache"
    with serve({"BAAI/bge-m3": repo}) as hub:
        files = fetch_bge(find_bge("BAAI/bge-m3"), cache_dir=cache, endpoint=hub.url)
    assert files.weights is None
    assert fetch_bge(find_bge("bge-m3"), cache_dir=cache, offline=True) == files
    out = load_m3_encoder(files.root).encode(TEXTS[:3], sparse=True, colbert=True)
    ref = m3_torch.encode(TEXTS[:3], sparse=True, colbert=True)
    np.testing.assert_array_equal(out.dense, ref.dense)
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(out.sparse, ref.sparse))


def test_not_cached_and_offline_names_the_model_as_asked(tmp_path: Path) -> None:
    entry = find_bge("Visualized_m3")
    with pytest.raises(ModelUnavailableOffline) as info:
        fetch_bge(entry, asked="Visualized_m3", cache_dir=tmp_path, offline=True)
    assert "'Visualized_m3'" in str(info.value) and "crossmodal models download" in str(info.value)


def test_a_repo_without_a_required_file_is_an_error_naming_it(m3_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "bge-m3"
    shutil.copytree(m3_dir, repo)
    (repo / "sparse_linear.pt").unlink()
    with serve({"BAAI/bge-m3": repo}) as hub, pytest.raises(ModelLoadError, match="BAAI/bge-m3/sparse_linear.pt"):
        fetch_bge(find_bge("BAAI/bge-m3"), cache_dir=tmp_path / "cache", endpoint=hub.url)


def test_load_model_resolves_the_visualized_entries_through_the_hub_cache(visualized_dir: Path, tmp_path: Path) -> None:
    import crossmodal

    visual, text = _split(visualized_dir, tmp_path / "repos", "Visualized_base_en_v1.5.pth")
    cache = tmp_path / "hub"
    local = crossmodal.load_model(visualized_dir, runtime="torch")
    with serve({"BAAI/bge-visualized": visual, "BAAI/bge-base-en-v1.5": text}) as hub:
        model = crossmodal.load_model("BAAI/bge-visualized-base-en-v1.5", runtime="torch", hub_cache=cache,
                                      hub_endpoint=hub.url)
        n = len(hub.requests)
        crossmodal.load_model("Visualized_base_en_v1.5", runtime="torch", hub_cache=cache, hub_endpoint=hub.url)
        assert len(hub.requests) == n, "a cached model must resolve without touching the hub"
    assert model.spec.name == "BAAI/bge-visualized-base-en-v1.5" and model.spec.family == "visualized_bge"
    assert model.resolved.origin == "catalog" and model.spec.description.startswith("BAAI Visualized-BGE")
    offline = crossmodal.load_model("hf-hub:BAAI/bge-visualized-base-en-v1.5", runtime="torch", hub_cache=cache,
                                    offline=True)
    for m in (model, offline):
        np.testing.assert_array_equal(m.embed_texts(TEXTS[:3]), local.embed_texts(TEXTS[:3]))
        np.testing.assert_array_equal(m.embed_pairs(PHOTOS[:1], PAIR_TEXTS[:1]), local.embed_pairs(PHOTOS[:1], PAIR_TEXTS[:1]))
    # A catalog name exports too: the checkpoint and the text model's files come from two repos.
    from click.testing import CliRunner

    from crossmodal.cli.main import cli

    env = {"CROSSMODAL_HUB_CACHE": str(cache), "CROSSMODAL_OFFLINE": "1", "CROSSMODAL_CACHE": str(tmp_path / "c")}
    result = CliRunner().invoke(cli, ["models", "export", "Visualized_base_en_v1.5", str(tmp_path / "onnx")], env=env)
    assert result.exit_code == 0, result.output
    exported = crossmodal.load_model(tmp_path / "onnx")
    assert np.abs(exported.embed_pairs(PHOTOS[:1], PAIR_TEXTS[:1]) - local.embed_pairs(PHOTOS[:1], PAIR_TEXTS[:1])).max() <= 1e-5


def test_load_model_resolves_bge_m3_on_both_runtimes_then_offline(tmp_path: Path) -> None:
    import crossmodal
    from crossmodal.testing.bge import build_m3

    wide = build_m3(tmp_path / "wide", size="wide")  # the catalog's 1024 dims, one layer
    repo = _m3_hub_repo(wide, tmp_path / "bge-m3")
    local = crossmodal.load_model(wide, runtime="torch")
    with serve({"BAAI/bge-m3": repo}) as hub:
        torch_model = crossmodal.load_model("BAAI/bge-m3", runtime="torch", hub_cache=tmp_path / "hub",
                                            hub_endpoint=hub.url)
    onnx_model = crossmodal.load_model("bge-m3", hub_cache=tmp_path / "hub", cache_dir=tmp_path / "derived",
                                       offline=True)
    assert torch_model.space == onnx_model.space and torch_model.spec.name == "BAAI/bge-m3"
    np.testing.assert_array_equal(torch_model.embed_texts(TEXTS), local.embed_texts(TEXTS))
    assert np.abs(onnx_model.embed_texts(TEXTS) - local.embed_texts(TEXTS)).max() <= 1e-5
    sparse = onnx_model.embed_texts(TEXTS[:2], output="sparse")
    assert [s.indices.tolist() for s in sparse] == [s.indices.tolist() for s in local.embed_texts(TEXTS[:2], output="sparse")]


def test_an_uncached_bge_entry_offline_names_the_model_as_asked(tmp_path: Path) -> None:
    import crossmodal

    with pytest.raises(ModelUnavailableOffline, match="'Visualized_m3'"):
        crossmodal.load_model("Visualized_m3", hub_cache=tmp_path, offline=True)
