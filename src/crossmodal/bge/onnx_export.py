"""Export crossmodal's Visualized-BGE and BGE-M3 graphs to ONNX, checked against torch.

An export directory holds the graphs (``onnx/*.onnx``, dynamic batch and
sequence axes), the model's tokenizer files and ``bge.json`` (the family, the
token / image limits the graphs were built for, and the largest difference
from torch each graph was checked at), so ONNX Runtime needs nothing
else (:mod:`.onnx_run`). Graphs whose weights exceed ``external_data_bytes``
(2 GB by default, protobuf's limit) keep them in one ``<graph>.onnx.data`` file
beside the graph. Before an export counts as done, each graph is run by ONNX
Runtime on inputs of a batch size and length other than the traced ones and
must match torch within ``atol``.

The wrappers are put in eval mode explicitly: the exporter restores a
wrapper's training flag onto its submodules, which would switch dropout on in
a model that has any.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ExportError
from .m3 import M3Model
from .onnx_run import MANIFEST
from .visualized import VisualizedBGE

__all__ = ["MANIFEST", "export_m3", "export_visualized"]

OPSET = 17
TWO_GB = 2 * 1024**3
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                    "sentencepiece.bpe.model", "config.json")


class _Text(nn.Module):
    def __init__(self, model: VisualizedBGE) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(input_ids, attention_mask)


class _Pair(nn.Module):
    def __init__(self, model: VisualizedBGE) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_pair(pixel_values, input_ids, attention_mask)


def _save(proto: Any, path: Path, external_data_bytes: int) -> None:
    import onnx

    weights = sum(len(t.raw_data) for t in proto.graph.initializer)
    if weights > external_data_bytes:
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(proto, str(path))


def _export(wrapper: nn.Module, args: tuple, path: Path, inputs: dict[str, dict[int, str]], outputs: dict[str, dict[int, str]],
            external_data_bytes: int) -> None:
    import onnx

    wrapper.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-") as tmp:
        # The exporter splits a graph over 2 GB into one file per tensor; it is gathered below.
        raw = Path(tmp) / path.name
        with torch.inference_mode():
            torch.onnx.export(wrapper, args, str(raw), dynamo=False, opset_version=OPSET,
                              input_names=list(inputs), output_names=list(outputs), dynamic_axes={**inputs, **outputs})
        _save(onnx.load(str(raw), load_external_data=True), path, external_data_bytes)


def _copy_tokenizer(src: Path, out: Path) -> None:
    for name in _TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)


def _check(name: str, expected: np.ndarray, actual: np.ndarray, atol: float) -> float:
    """The largest difference, relative to the output's scale when that is over 1."""
    scale = max(1.0, float(np.abs(expected).max()))
    diff = float(np.abs(expected - actual).max()) / scale
    if not diff <= atol:
        raise ExportError(f"the ONNX {name} graph disagrees with torch: max |diff| {diff:.2e} (of scale {scale:.3g}) "
                          f"> {atol:.0e}")
    return diff


def _finish(tmp: Path, out: Path, manifest: dict[str, Any]) -> Path:
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _ids(model_vocab: int, batch: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, model_vocab, size=(batch, length), dtype=np.int64)
    mask = np.ones((batch, length), dtype=np.int64)
    mask[0, length // 2:] = 0  # one padded row
    return ids, mask


def export_visualized(model: VisualizedBGE, tokenizer_dir: str | Path, out: str | Path, *, atol: float = 1e-5,
                      external_data_bytes: int = TWO_GB) -> Path:
    """Write ``onnx/text.onnx`` and ``onnx/pair.onnx`` (image-only runs the pair graph with an empty text)."""
    from .onnx_run import OnnxVisualizedGraphs

    model = model.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bge-export-", dir=out.parent))
    cfg = model.cfg
    size = cfg.vision.image_size
    seq = {0: "batch", 1: "sequence"}
    try:
        ids, mask = _ids(cfg.text.vocab_size, 2, 7, 0)
        _export(_Text(model), (torch.from_numpy(ids), torch.from_numpy(mask)), tmp / "onnx" / "text.onnx",
                {"input_ids": seq, "attention_mask": seq}, {"embeddings": {0: "batch"}}, external_data_bytes)
        pixels = torch.zeros(2, 3, size, size)
        _export(_Pair(model), (pixels, torch.from_numpy(ids), torch.from_numpy(mask)), tmp / "onnx" / "pair.onnx",
                {"pixel_values": {0: "batch"}, "input_ids": seq, "attention_mask": seq}, {"embeddings": {0: "batch"}},
                external_data_bytes)
        _copy_tokenizer(Path(tokenizer_dir), tmp)
        graphs = OnnxVisualizedGraphs(tmp, threads=1)
        ids, mask = _ids(cfg.text.vocab_size, 3, 11, 1)
        pixel_values = np.random.default_rng(2).standard_normal((3, 3, size, size)).astype(np.float32)
        with torch.inference_mode():
            ref_text = model.encode_text(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
            ref_pair = model.encode_pair(torch.from_numpy(pixel_values), torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        checked = {"text": _check("text", ref_text, graphs.text(ids, mask), atol),
                   "pair": _check("pair", ref_pair, graphs.pair(pixel_values, ids, mask), atol)}
        del graphs
        return _finish(tmp, out, {"family": "visualized-bge", "image_tokens": cfg.image_tokens,
                                  "max_text_tokens": cfg.max_text_tokens, "max_pair_tokens": cfg.max_pair_tokens,
                                  "image_size": size, "hidden_size": cfg.text.hidden_size, "checked": checked})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _M3(nn.Module):
    def __init__(self, model: M3Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model(input_ids, attention_mask)


def export_m3(model: M3Model, tokenizer_dir: str | Path, out: str | Path, *, atol: float = 1e-5,
              external_data_bytes: int = TWO_GB) -> Path:
    """Write ``onnx/m3.onnx``: (input_ids, attention_mask) -> cls[, token_weights, colbert]."""
    from .onnx_run import OnnxM3Graphs

    model = model.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bge-export-", dir=out.parent))
    seq = {0: "batch", 1: "sequence"}
    outputs: dict[str, dict[int, str]] = {"cls": {0: "batch"}}
    if model.has_heads:
        outputs.update({"token_weights": seq, "colbert": {0: "batch", 1: "sequence_minus_1"}})
    try:
        ids, mask = _ids(model.cfg.vocab_size, 2, 7, 0)
        _export(_M3(model), (torch.from_numpy(ids), torch.from_numpy(mask)), tmp / "onnx" / "m3.onnx",
                {"input_ids": seq, "attention_mask": seq}, outputs, external_data_bytes)
        _copy_tokenizer(Path(tokenizer_dir), tmp)
        graphs = OnnxM3Graphs(tmp, threads=1)
        ids, mask = _ids(model.cfg.vocab_size, 3, 11, 1)
        with torch.inference_mode():
            expected = [t.numpy() for t in model(torch.from_numpy(ids), torch.from_numpy(mask))]
        checked = {name: _check(name, want, got, atol) for name, want, got in zip(outputs, expected, graphs.run(ids, mask))}
        del graphs
        return _finish(tmp, out, {"family": "bge-m3", "max_tokens": model.cfg.max_tokens, "heads": model.has_heads,
                                  "missing_heads": list(model.missing_heads), "hidden_size": model.cfg.hidden_size,
                                  "checked": checked})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
