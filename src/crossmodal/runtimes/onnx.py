"""ONNX Runtime encoder: the default runtime. It never imports torch.

Each tower is one ONNX graph (``vision_model.onnx``: pixel_values ->
image_embeds; ``text_model.onnx``: input_ids[, attention_mask, ...] ->
text_embeds), as in the hub's Xenova and Qdrant repos and in what
``crossmodal models export`` writes. Which graphs a model has, and exporting
them, is its family's business (:mod:`crossmodal.families`). Inputs are fed by the names the graph
declares; the output is read by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError, RuntimeUnavailable
from .base import RuntimeOptions

__all__ = ["OnnxEncoder", "load_graphs", "session_options"]

_OUTPUT_NAMES = {"vision": ("image_embeds", "image_features", "embeddings"), "text": ("text_embeds", "text_features", "embeddings")}
_ORT_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def default_threads() -> int:
    """One inference thread per physical core this process may use.

    A second hardware thread on the same core adds nothing to a GEMM-bound
    model (both share one set of vector units) but takes the core from the
    decode workers, so SMT siblings are counted once, as onnxruntime's own
    default does. Where the topology cannot be read, every allowed CPU counts.
    """
    from ..pipeline import available_cores

    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - macOS / Windows
        return available_cores()
    cores = set()
    for cpu in cpus:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add(siblings)
    return max(1, len(cores))


def session_options(threads: int | None) -> Any:
    """Session options for both towers: all graph optimizations (they keep fp32 parity within 1e-6
    on the test models), ``threads`` intra-op threads, sequential execution, no spinning."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn their cores between operators and between batches, which the decode
    # workers (and anything else on the machine) need; see bench/embed_options.py --study session.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def _providers(device: str | None) -> list[Any]:
    import onnxruntime as ort

    if device is None or device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeUnavailable("device 'cuda' needs onnxruntime-gpu; install it or use runtime='torch'")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise ModelLoadError(f"unknown device {device!r}; expected 'cpu' or 'cuda[:N]'")


class _Tower:
    def __init__(self, path: Path, kind: str, output: str | None, dim: int, options: RuntimeOptions) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ModelLoadError(f"missing {kind} graph {path}")
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=session_options(options.threads), providers=_providers(options.device)
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"cannot load {kind} graph {path}: {exc}") from exc
        self.inputs = {i.name: _ORT_INT_TYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self.output = self._pick_output(path, kind, output, dim)

    def _pick_output(self, path: Path, kind: str, wanted: str | None, dim: int) -> str:
        outputs = self.session.get_outputs()
        names = [o.name for o in outputs]
        if wanted is not None and wanted in names:
            return wanted
        for candidate in _OUTPUT_NAMES[kind]:
            if candidate in names:
                return candidate
        two_d = [o.name for o in outputs if len(o.shape) == 2]
        if len(two_d) == 1:
            return two_d[0]
        raise ModelLoadError(f"cannot tell which output of {path} holds the {kind} embeddings: {names}")

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (out,) = self.session.run([self.output], feeds)
        return np.ascontiguousarray(out, dtype=np.float32)


class OnnxEncoder:
    """Both towers as ONNX Runtime sessions."""

    def __init__(self, vision: Path, text: Path, dim: int, options: RuntimeOptions,
                 vision_output: str | None = None, text_output: str | None = None) -> None:
        self.dim = dim
        self.vision_path, self.text_path = vision, text  # the graphs actually run (int8 ones in fast mode)
        self._vision = _Tower(vision, "vision", vision_output, dim, options)
        self._text = _Tower(text, "text", text_output, dim, options)
        (self._pixel_name,) = [n for n in self._vision.inputs] or ["pixel_values"]

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        return self._check(self._vision.run({self._pixel_name: pixel_values}), "vision")

    def encode_texts(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        ids = inputs["input_ids"]
        feeds = {}
        for name, dtype in self._text.inputs.items():
            value = inputs.get(name)
            if value is None:
                if name == "attention_mask":
                    value = np.ones_like(ids)
                elif name in ("token_type_ids", "position_ids"):
                    value = np.zeros_like(ids) if name == "token_type_ids" else np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
                else:
                    raise ModelLoadError(f"the text graph needs an input {name!r} crossmodal does not produce")
            feeds[name] = np.ascontiguousarray(value, dtype=dtype)
        return self._check(self._text.run(feeds), "text")

    def _check(self, out: np.ndarray, kind: str) -> np.ndarray:
        if out.ndim != 2 or out.shape[1] != self.dim:
            raise ModelLoadError(f"the {kind} graph returned shape {out.shape}, expected (n, {self.dim})")
        return out


def load_graphs(vision: Path, text: Path, dim: int, options: RuntimeOptions, *, weights: str,
                vision_output: str | None = None, text_output: str | None = None) -> OnnxEncoder:
    """Both tower graphs as sessions; in ``fast`` mode their cached int8 versions (built on first use)."""
    if options.mode == "fast":
        from .quantize import quantized_pair

        vision, text = quantized_pair(vision, text, weights, options.derived_cache)
    return OnnxEncoder(vision, text, dim, options, vision_output, text_output)
