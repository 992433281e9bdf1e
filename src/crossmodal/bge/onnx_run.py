"""Exported Visualized-BGE and BGE-M3 graphs on ONNX Runtime (numpy only, never torch).

An export directory is what :mod:`.onnx_export` writes: ``onnx/*.onnx``, the
tokenizer files and ``bge.json``. The graph objects here implement the
interfaces of :mod:`.encoders`, so the ONNX path shares tokenization,
preprocessing and post-processing with the torch path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError, RuntimeUnavailable
from .encoders import M3Encoder, M3Limits, VisualizedEncoder, VisualizedLimits
from .tokens import BgeTokenizer

__all__ = ["OnnxM3Graphs", "OnnxVisualizedGraphs", "load_m3_onnx", "load_visualized_onnx", "read_manifest"]

MANIFEST = "bge.json"


def read_manifest(root: Path, family: str) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise ModelLoadError(f"{root} is not a crossmodal BGE export (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if manifest.get("family") != family:
        raise ModelLoadError(f"{root} holds a {manifest.get('family')!r} export, not {family!r}")
    return manifest


def _session(path: Path, threads: int | None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise RuntimeUnavailable("onnxruntime is not installed") from exc
    if not path.is_file():
        raise ModelLoadError(f"ONNX graph not found: {path}")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
        raise ModelLoadError(f"cannot load ONNX graph {path}: {exc}") from exc


class OnnxVisualizedGraphs:
    def __init__(self, root: str | Path, *, threads: int | None = None) -> None:
        root = Path(root)
        self._text = _session(root / "onnx" / "text.onnx", threads)
        self._pair = _session(root / "onnx" / "pair.onnx", threads)

    def text(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._text.run(["embeddings"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]

    def pair(self, pixel_values: np.ndarray, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32), "input_ids": input_ids,
                 "attention_mask": attention_mask}
        return self._pair.run(["embeddings"], feeds)[0]


class OnnxM3Graphs:
    def __init__(self, root: str | Path, *, threads: int | None = None, missing_heads: tuple[str, ...] = ()) -> None:
        self._session = _session(Path(root) / "onnx" / "m3.onnx", threads)
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.has_heads = len(self._outputs) == 3
        self.missing_heads = () if self.has_heads else missing_heads

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self._session.run(self._outputs, {"input_ids": input_ids, "attention_mask": attention_mask}))


def load_visualized_onnx(root: str | Path, *, threads: int | None = None, **options: Any) -> VisualizedEncoder:
    root = Path(root)
    m = read_manifest(root, "visualized-bge")
    limits = VisualizedLimits(image_tokens=int(m["image_tokens"]), max_text_tokens=int(m["max_text_tokens"]),
                              max_pair_tokens=int(m["max_pair_tokens"]), image_size=int(m["image_size"]),
                              dim=int(m["hidden_size"]))
    return VisualizedEncoder(OnnxVisualizedGraphs(root, threads=threads), BgeTokenizer.from_dir(root), limits, **options)


def load_m3_onnx(root: str | Path, *, threads: int | None = None, **options: Any) -> M3Encoder:
    root = Path(root)
    m = read_manifest(root, "bge-m3")
    graphs = OnnxM3Graphs(root, threads=threads, missing_heads=tuple(m.get("missing_heads", ())))
    return M3Encoder(graphs, BgeTokenizer.from_dir(root), M3Limits(int(m["max_tokens"]), int(m["hidden_size"])),
                     **options)
