"""The ONNX exports equal the torch graphs, at batch sizes and lengths other than the traced ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from .inputs import M3_TEXTS, PAIR_TEXTS, PHOTOS, TEXTS

ATOL = 1e-5


def test_visualized_onnx_equals_torch(visualized_torch, visualized_onnx) -> None:
    torch_enc, onnx_enc = visualized_torch, visualized_onnx
    for embed, args in (("embed_texts", (TEXTS,)), ("embed_images", (PHOTOS[:2],)),
                        ("embed_pairs", (PHOTOS[:2], PAIR_TEXTS[:2]))):
        a = getattr(torch_enc, embed)(*args, normalized=False)  # raw vectors: the graphs themselves
        b = getattr(onnx_enc, embed)(*args, normalized=False)
        assert np.abs(a - b).max() <= ATOL * max(1.0, float(np.abs(a).max())), embed


def test_m3_onnx_equals_torch(m3_torch, m3_onnx) -> None:
    torch_enc, onnx_graphs = m3_torch, m3_onnx.graphs
    batch = torch_enc.tokenizer.encode(M3_TEXTS, max_tokens=128)
    for name, a, b in zip(("cls", "token_weights", "colbert"), torch_enc.graphs.run(batch.input_ids, batch.attention_mask),
                          onnx_graphs.run(batch.input_ids, batch.attention_mask)):
        assert a.shape == b.shape, name
        assert np.abs(a - b).max() <= ATOL, name


def test_export_writes_a_self_contained_directory(visualized_onnx_dir: Path, m3_onnx_dir: Path) -> None:
    import json

    assert sorted(p.name for p in (visualized_onnx_dir / "onnx").iterdir()) == ["pair.onnx", "text.onnx"]
    manifest = json.loads((visualized_onnx_dir / "bge.json").read_text())
    assert manifest["max_pair_tokens"] == 316 and manifest["image_tokens"] == 196
    assert (visualized_onnx_dir / "tokenizer.json").is_file() and (m3_onnx_dir / "tokenizer.json").is_file()
    assert json.loads((m3_onnx_dir / "bge.json").read_text())["heads"] is True


def test_large_graphs_keep_their_weights_in_one_external_file(m3_dir: Path, m3_torch, tmp_path: Path) -> None:
    """Over the threshold (2 GB for real; 0 here) the weights go to ``<graph>.onnx.data`` beside the graph."""
    from crossmodal.bge.m3 import load_m3
    from crossmodal.bge.onnx_export import export_m3
    from crossmodal.bge.onnx_run import load_m3_onnx

    out = export_m3(load_m3(m3_dir), m3_dir, tmp_path / "external", external_data_bytes=0)
    files = sorted(p.name for p in (out / "onnx").iterdir())
    assert files == ["m3.onnx", "m3.onnx.data"]
    assert (out / "onnx" / "m3.onnx").stat().st_size < 100_000 < (out / "onnx" / "m3.onnx.data").stat().st_size
    a = load_m3_onnx(out).encode(M3_TEXTS[:3], sparse=True, colbert=True)
    b = m3_torch.encode(M3_TEXTS[:3], sparse=True, colbert=True)
    assert np.abs(a.dense - b.dense).max() <= ATOL


def test_dense_only_m3_exports_one_output(m3_dir: Path, tmp_path: Path) -> None:
    from crossmodal.bge.m3 import load_m3
    from crossmodal.bge.onnx_export import export_m3
    from crossmodal.bge.onnx_run import OnnxM3Graphs

    out = export_m3(load_m3(m3_dir, heads=False), m3_dir, tmp_path / "dense")
    assert OnnxM3Graphs(out).has_heads is False
    assert len(OnnxM3Graphs(out)._session.get_outputs()) == 1


def test_onnx_path_never_imports_torch(visualized_onnx_dir: Path, m3_onnx_dir: Path) -> None:
    script = (
        "import sys\n"
        "from crossmodal.bge.onnx_run import load_visualized_onnx, load_m3_onnx\n"
        f"v = load_visualized_onnx({str(visualized_onnx_dir)!r})\n"
        f"v.embed_texts(['a cat']); v.embed_pairs([{str(PHOTOS[0])!r}], ['a cat'])\n"
        f"m = load_m3_onnx({str(m3_onnx_dir)!r})\n"
        "m.encode(['a cat'], sparse=True, colbert=True)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'transformers', 'torchvision'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
