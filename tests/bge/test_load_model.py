"""Visualized-BGE and BGE-M3 through crossmodal's own entry points: load_model, embed_*, export, collections.

The same seeded checkpoints and reference results as the graph-level tests
(tests/bge/conftest.py), reached the way users reach them: ``load_model(DIR)``
on a checkpoint directory (runtime torch) and on an ONNX export (runtime onnx,
without importing torch).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crossmodal
from crossmodal.errors import ModelLoadError, TextTooLong, UnsupportedInput

from ..reference.bge_reference import sparse_of
from .inputs import (
    LONGEST_PAIR_TEXT,
    M3_MAX_LENGTH,
    M3_TEXTS,
    M3_TRUNCATE_DIM,
    PAIR_TEXTS,
    PHOTOS,
    TEXTS,
    TOO_LONG_PAIR_TEXT,
)

ATOL = 1e-5
ENGLISH_AND_CHINESE = ["A black cat sleeping on a chair.", "一只黑猫睡在椅子上。", "北京和上海都是大城市。"]


@pytest.fixture(scope="module")
def visualized_models(visualized_dir: Path, visualized_onnx_dir: Path) -> dict[str, crossmodal.Model]:
    return {"torch": crossmodal.load_model(visualized_dir, runtime="torch"),
            "onnx": crossmodal.load_model(visualized_onnx_dir)}


@pytest.fixture(scope="module")
def m3_models(m3_dir: Path, m3_onnx_dir: Path) -> dict[str, crossmodal.Model]:
    return {"torch": crossmodal.load_model(m3_dir, runtime="torch"), "onnx": crossmodal.load_model(m3_onnx_dir)}


RUNTIMES = ["torch", "onnx"]


def _close(ours: np.ndarray, ref: np.ndarray, atol: float = ATOL) -> None:
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert float(np.abs(ours - ref).max()) <= atol


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_visualized_texts_images_and_pairs_equal_the_reference(visualized_models, visualized_reference,
                                                               runtime: str) -> None:
    model = visualized_models[runtime]
    assert model.runtime == runtime and model.spec.family == "visualized_bge" and model.spec.fusion.kind == "graph"
    _close(model.embed_texts(TEXTS), visualized_reference["text"])
    _close(model.embed_images(PHOTOS), visualized_reference["image"])
    _close(model.embed_pairs(PHOTOS, PAIR_TEXTS), visualized_reference["pair"])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_visualized_pair_texts_are_cut_to_what_the_model_can_take(visualized_models, visualized_reference,
                                                                  runtime: str) -> None:
    model = visualized_models[runtime]
    assert model.spec.text.pair_context_length == 316 and model.spec.text.context_length == 512
    _close(model.embed_pairs(PHOTOS[:1], [LONGEST_PAIR_TEXT]), visualized_reference["longest_pair"])
    _close(model.embed_pairs(PHOTOS[:1], [TOO_LONG_PAIR_TEXT]), visualized_reference["longest_pair"])
    with pytest.raises(TextTooLong, match="316"):
        model.embed_pairs(PHOTOS[:1], [TOO_LONG_PAIR_TEXT], truncate=False)
    model.embed_texts([TOO_LONG_PAIR_TEXT], truncate=False)  # a text alone has the whole context


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_visualized_batch_of_one_equals_batch_of_64(visualized_models, runtime: str) -> None:
    model = visualized_models[runtime]
    images, texts = PHOTOS * 2, [*PAIR_TEXTS, *reversed(PAIR_TEXTS)]
    for embed, args in (("embed_texts", (TEXTS,)), ("embed_images", (images,)), ("embed_pairs", (images, texts))):
        one = getattr(model, embed)(*args, batch_size=1)
        many = getattr(model, embed)(*args, batch_size=64)
        assert float(np.abs(one - many).max()) <= 1e-6, embed


def test_visualized_onnx_equals_torch(visualized_models) -> None:
    torch_model, onnx_model = visualized_models["torch"], visualized_models["onnx"]
    assert torch_model.space.dim == onnx_model.space.dim == 768
    _close(onnx_model.embed_texts(TEXTS), torch_model.embed_texts(TEXTS))
    _close(onnx_model.embed_images(PHOTOS[:2]), torch_model.embed_images(PHOTOS[:2]))
    _close(onnx_model.embed_pairs(PHOTOS[:2], PAIR_TEXTS[:2]), torch_model.embed_pairs(PHOTOS[:2], PAIR_TEXTS[:2]))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_m3_dense_sparse_and_multivector_equal_the_reference(m3_models, m3_reference, runtime: str) -> None:
    model = m3_models[runtime]
    assert model.spec.text.context_length == M3_MAX_LENGTH and model.spec.image is None
    _close(model.embed_texts(M3_TEXTS), m3_reference["all.dense"])
    sparse = model.embed_texts(M3_TEXTS, output="sparse")
    multi = model.embed_texts(M3_TEXTS, output="multivector")
    for i in range(len(M3_TEXTS)):
        ids, weights = sparse_of(m3_reference, "all", i)
        assert sparse[i].indices.tolist() == ids.tolist() and np.all(np.diff(sparse[i].indices) > 0)
        assert sparse[i].values.dtype == np.float32
        assert float(np.abs(sparse[i].values - weights).max()) <= ATOL
        _close(multi[i], m3_reference[f"all.colbert.{i}"])
        np.testing.assert_allclose(np.linalg.norm(multi[i], axis=1), 1.0, atol=1e-6)
    both = model.embed_text_outputs(M3_TEXTS, outputs=("sparse", "multivector"))
    assert both.sparse is not None and both.multivector is not None
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(both.sparse, sparse))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_m3_truncate_dim_equals_the_reference(m3_dir: Path, m3_onnx_dir: Path, m3_reference, runtime: str) -> None:
    model = crossmodal.load_model(m3_dir if runtime == "torch" else m3_onnx_dir, runtime=runtime,
                                  truncate_dim=M3_TRUNCATE_DIM)
    assert model.dim == M3_TRUNCATE_DIM
    _close(model.embed_texts(M3_TEXTS), m3_reference["dim.dense"])
    for i, rows in enumerate(model.embed_texts(M3_TEXTS, output="multivector")):
        _close(rows, m3_reference[f"dim.colbert.{i}"])
    full = crossmodal.load_model(m3_dir if runtime == "torch" else m3_onnx_dir, runtime=runtime)
    assert model.space != full.space  # truncated vectors are another space
    with pytest.raises(crossmodal.ConfigError, match="truncate_dim"):
        crossmodal.load_model(m3_onnx_dir, truncate_dim=10_000)


def test_m3_batches_and_runtimes_agree(m3_models) -> None:
    torch_model, onnx_model = m3_models["torch"], m3_models["onnx"]
    for model in (torch_model, onnx_model):
        assert float(np.abs(model.embed_texts(M3_TEXTS, batch_size=1) - model.embed_texts(M3_TEXTS, batch_size=64)).max()) <= 1e-6
        one = model.embed_texts(M3_TEXTS, output="multivector", batch_size=1)
        many = model.embed_texts(M3_TEXTS, output="multivector", batch_size=64)
        assert max(float(np.abs(a - b).max()) for a, b in zip(one, many)) <= 1e-6
    _close(onnx_model.embed_texts(M3_TEXTS), torch_model.embed_texts(M3_TEXTS))


def test_m3_has_no_image_tower(m3_models) -> None:
    model = m3_models["onnx"]
    assert model.capabilities.inputs == ("text",)
    with pytest.raises(UnsupportedInput, match=f"model {str(model.name)!r} does not embed images"):
        model.embed_images(PHOTOS[:1])
    with pytest.raises(UnsupportedInput, match="does not embed image\\+text pairs"):
        model.embed_pairs(PHOTOS[:1], ["a cat"])


def test_visualized_has_no_sparse_output(visualized_models) -> None:
    with pytest.raises(UnsupportedInput, match="gives no sparse output"):
        visualized_models["onnx"].embed_texts(["a cat"], output="sparse")
    with pytest.raises(crossmodal.ConfigError, match="output must be one of"):
        visualized_models["onnx"].embed_texts(["a cat"], output="colbert")


@pytest.mark.parametrize("head", ["sparse_linear.pt", "colbert_linear.pt"])
def test_a_missing_head_file_is_an_error_unless_only_dense_is_asked_for(m3_dir: Path, m3_models, tmp_path: Path,
                                                                        head: str) -> None:
    root = tmp_path / "m3"
    shutil.copytree(m3_dir, root)
    (root / head).unlink()
    for runtime in RUNTIMES:
        with pytest.raises(ModelLoadError, match=head.replace(".", r"\.")):
            crossmodal.load_model(root, runtime=runtime, cache_dir=tmp_path / "cache")
    dense = crossmodal.load_model(root, runtime="torch", outputs=("dense",))
    assert dense.capabilities.outputs == ("dense",) and not hasattr(dense, "embed_sparse")
    np.testing.assert_array_equal(dense.embed_texts(M3_TEXTS), m3_models["torch"].embed_texts(M3_TEXTS))
    with pytest.raises(UnsupportedInput, match="gives no sparse output"):
        dense.embed_texts(["a cat"], output="sparse")


def test_a_dense_only_export_says_what_it_lacks(m3_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "m3"
    shutil.copytree(m3_dir, root)
    (root / "colbert_linear.pt").unlink()
    (root / "sparse_linear.pt").unlink()
    crossmodal.families.export_onnx(root, tmp_path / "onnx")
    with pytest.raises(ModelLoadError, match="exported without colbert_linear.pt and sparse_linear.pt"):
        crossmodal.load_model(tmp_path / "onnx")
    assert crossmodal.load_model(tmp_path / "onnx", outputs=["dense"]).embed_texts(["a cat"]).shape == (1, 64)


@pytest.mark.parametrize("family", ["visualized", "m3"])
def test_both_families_tokenize_english_and_chinese_to_real_ids(visualized_models, m3_models, family: str) -> None:
    for model in (visualized_models if family == "visualized" else m3_models).values():
        unk = model.tokenizer._backend.token_to_id("[UNK]" if family == "visualized" else "<unk>")  # type: ignore[attr-defined]
        for text, tokens in zip(ENGLISH_AND_CHINESE, model.tokenizer.tokenize(ENGLISH_AND_CHINESE)):
            content = tokens.ids[1:-1]
            assert content and unk is not None, text
            assert sum(t == unk for t in content) == 0, (text, content)
        vectors = model.embed_texts(ENGLISH_AND_CHINESE)
        assert float(vectors[0] @ vectors[1]) < 0.9999  # two scripts, two vectors


def test_onnx_exports_load_without_torch(visualized_onnx_dir: Path, m3_onnx_dir: Path) -> None:
    script = (
        "import sys, crossmodal\n"
        f"v = crossmodal.load_model({str(visualized_onnx_dir)!r})\n"
        f"v.embed_texts(['a cat']); v.embed_images([{str(PHOTOS[0])!r}]); v.embed_pairs([{str(PHOTOS[0])!r}], ['a cat'])\n"
        f"m = crossmodal.load_model({str(m3_onnx_dir)!r})\n"
        "m.embed_texts(['a cat']); m.embed_texts(['a cat'], output='sparse'); m.embed_texts(['a cat'], output='multivector')\n"
        "assert v.runtime == m.runtime == 'onnx'\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'transformers', 'torchvision'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


@pytest.mark.parametrize("family", ["visualized", "m3"])
def test_crossmodal_models_export_then_load_model(visualized_dir: Path, m3_dir: Path, visualized_models, m3_models,
                                                  tmp_path: Path, family: str) -> None:
    from click.testing import CliRunner

    from crossmodal.cli.main import cli

    src, models = (visualized_dir, visualized_models) if family == "visualized" else (m3_dir, m3_models)
    out = tmp_path / "onnx"
    result = CliRunner().invoke(cli, ["models", "export", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert "checked against the source" in result.output and "nan" not in result.output
    exported = crossmodal.load_model(out)
    assert exported.space == models["torch"].space  # the export carries its source's weights identity
    _close(exported.embed_texts(TEXTS), models["torch"].embed_texts(TEXTS))


def test_a_collection_over_bge_m3_keeps_and_searches_its_sparse_and_multivector_outputs(m3_models, tmp_path: Path) -> None:
    from crossmodal.retrieval.tokens import maxsim

    model = m3_models["onnx"]
    texts = ["a black cat sleeping on a chair", "two dogs running in the snow", "the eiffel tower at night",
             "boats on a quiet lake", "一只猫坐在木椅子上", "巴黎是法国的首都"]
    store = crossmodal.open_store(tmp_path / "store")
    try:
        col = store.collection("m3", model=model)
        col.add_texts(texts)
        stored = {r.text: r for r in col.items(vectors=True)}
        for text in texts:
            want_sparse = model.embed_texts([text], output="sparse")[0].as_dict()
            assert stored[text].sparse == pytest.approx(want_sparse, rel=1e-6)
            want_multi = model.embed_texts([text], output="multivector")[0]
            np.testing.assert_allclose(stored[text].multivector.astype(np.float32), want_multi, atol=1e-3)  # float16
        query = "a black cat on a chair"
        q_sparse = model.embed_sparse([query])[0]
        expected = sorted(((t, sum(w * stored[t].sparse.get(i, 0.0) for i, w in q_sparse.items())) for t in texts),
                          key=lambda p: -p[1])
        expected = [(t, s) for t, s in expected if s > 0]
        hits = col.search(query, using="sparse", top_k=len(texts))
        assert [h.text for h in hits] == [t for t, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-5)
        hybrid = col.search(query, using="hybrid", rerank="multivector", top_k=3)
        q_multi = model.embed_multivectors([query])[0]
        scores = {h.text: h.score for h in hybrid}
        for text, score in scores.items():
            assert score == pytest.approx(maxsim(q_multi, stored[text].multivector), abs=1e-6)
        assert list(scores.values()) == sorted(scores.values(), reverse=True)
        assert hybrid[0].text == texts[0]
    finally:
        store.close()


def test_adding_texts_computes_the_sparse_and_multivector_outputs_in_one_pass(m3_onnx_dir: Path, tmp_path: Path) -> None:
    model = crossmodal.load_model(m3_onnx_dir)
    calls: list[frozenset[str]] = []
    inner = model.encoder.encode_text_outputs

    def counted(inputs, outputs):  # type: ignore[no-untyped-def]
        calls.append(frozenset(outputs))
        return inner(inputs, outputs)

    store = crossmodal.open_store(tmp_path / "store")
    try:
        col = store.collection("m3", model=model)  # creating it asks the model for its multi-vectors' width once
        model.encoder.encode_text_outputs = counted  # type: ignore[method-assign]
        col.add_texts(["a cat", "two dogs", "一只猫"])
    finally:
        store.close()
    assert calls == [frozenset({"dense", "sparse", "multivector"})]


def test_a_visualized_checkpoint_beside_a_full_bge_m3_directory_makes_it_a_visualized_bge(tmp_path: Path) -> None:
    """Users put Visualized_m3.pth into their bge-m3 download: that directory is then the Visualized model."""
    from crossmodal.families import FAMILIES

    root = tmp_path / "bge-m3"
    root.mkdir()
    (root / "config.json").write_text('{"model_type": "xlm-roberta", "hidden_size": 1024}')
    for name in ("model.safetensors", "tokenizer.json", "colbert_linear.pt", "sparse_linear.pt"):
        (root / name).write_bytes(b"")
    assert FAMILIES.detect(root).layout == "bge-m3"
    (root / "Visualized_m3.pth").write_bytes(b"")
    files = FAMILIES.detect(root)
    assert files.layout == "visualized-bge" and files.part("checkpoint") == root / "Visualized_m3.pth"
    assert FAMILIES.family_of(files).name == "visualized_bge"
    (root / "Visualized_base_en_v1.5.pth").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="2 Visualized_\\*.pth files"):
        FAMILIES.detect(root)


def test_onnx_exports_run_in_exact_mode_on_the_cpu(m3_onnx_dir: Path) -> None:
    with pytest.raises(crossmodal.ConfigError, match="mode 'fast' is not available for bge_m3 on ONNX Runtime"):
        crossmodal.load_model(m3_onnx_dir, mode="fast")
    with pytest.raises(crossmodal.ConfigError, match="use runtime 'torch' for device 'cuda'"):
        crossmodal.load_model(m3_onnx_dir, device="cuda")
