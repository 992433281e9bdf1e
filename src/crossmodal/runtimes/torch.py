"""PyTorch + transformers encoder (extra ``crossmodal[torch]``): the reference path, GPUs.

The model is put in eval mode once and every call runs under
``torch.inference_mode()``, so dropout never fires and no graph is kept: two
runs give identical vectors. ``mode="exact"`` runs fp32; ``mode="fast"`` on a
CUDA device autocasts to bf16 (fp16 where bf16 is unsupported).

On CUDA, inputs are staged through pinned host buffers (reused, grown as
needed) so the host-to-device copy is a real asynchronous DMA, and ``exact``
switches off TF32 for the duration of each call (cuDNN enables it by default
for convolutions, which would cost the 1e-5 parity). Batches are large there
(see :func:`crossmodal.pipeline.auto_batch_size`) and decoding runs on CPU
workers ahead of the GPU.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import ModelLoadError, RuntimeUnavailable
from .base import RuntimeOptions

__all__ = ["TorchEncoder", "features", "load_reference_model", "quiet_transformers"]


def _import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise RuntimeUnavailable("runtime 'torch' needs PyTorch and transformers: pip install 'crossmodal[torch]'") from exc
    return torch


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars, tracer and export warnings while crossmodal drives it."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_reference_model(path: Any) -> Any:
    """The transformers model in ``path``, in eval mode (CLIPModel, SiglipModel or ChineseCLIPModel)."""
    _import_torch()
    from transformers import AutoModel

    try:
        with quiet_transformers():
            model = AutoModel.from_pretrained(str(path))
    except Exception as exc:
        raise ModelLoadError(f"transformers cannot load the model in {path}: {exc}") from exc
    for name in ("get_image_features", "get_text_features"):
        if not hasattr(model, name):
            raise ModelLoadError(f"{path} holds a {type(model).__name__}, not a two-tower CLIP-family model")
    return model.eval()


def features(output: Any) -> Any:
    """transformers >= 5 returns an output object whose pooler_output holds the projection."""
    return output if hasattr(output, "shape") else output.pooler_output


class TorchEncoder:
    def __init__(self, model: Any, dim: int, options: RuntimeOptions) -> None:
        torch = _import_torch()
        self._torch = torch
        self.dim = dim
        self.device = torch.device(options.device or "cpu")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailable("device 'cuda' was asked for but torch sees no CUDA device")
        if options.threads and self.device.type == "cpu":
            torch.set_num_threads(options.threads)
        self.model = model.to(self.device).eval()
        self.autocast: Any = None
        if options.mode == "fast" and self.device.type == "cuda":
            self.autocast = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self._staging: dict[str, Any] = {}  # input name -> pinned host buffer (CUDA only)
        self._lock = threading.Lock()  # the staging buffers are reused call after call

    def _to_device(self, name: str, array: np.ndarray) -> Any:
        torch = self._torch
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type != "cuda":
            return tensor
        buf = self._staging.get(name)
        if buf is None or buf.dtype != tensor.dtype or buf.numel() < tensor.numel():
            buf = self._staging[name] = torch.empty(tensor.numel(), dtype=tensor.dtype).pin_memory()
        staged = buf[: tensor.numel()].view(tensor.shape)
        staged.copy_(tensor)
        return staged.to(self.device, non_blocking=True)

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        torch = self._torch
        if self.device.type != "cuda":
            yield
        elif self.autocast is not None:
            with torch.autocast(device_type="cuda", dtype=self.autocast):
                yield
        else:
            matmul = torch.backends.cuda.matmul
            before = matmul.allow_tf32
            matmul.allow_tf32 = False
            try:
                with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
                    yield
            finally:
                matmul.allow_tf32 = before

    def _run(self, fn: Any, **inputs: Any) -> np.ndarray:
        (out,) = self._run_outputs(lambda **t: (features(fn(**t)),), **inputs)
        return out

    def _run_outputs(self, fn: Any, **inputs: Any) -> tuple[np.ndarray, ...]:
        """``fn`` on the device, with the precision of the mode; every tensor it returns, as float32 arrays."""
        torch = self._torch
        lock = self._lock if self.device.type == "cuda" else contextlib.nullcontext()
        with lock, torch.inference_mode():
            tensors = {k: self._to_device(k, v) for k, v in inputs.items()}
            with self._precision():
                outs = fn(**tensors)
            # .cpu() waits for the device, so the staging buffers are free again when it returns.
            return tuple(out.float().cpu().numpy() for out in outs)

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        return self._run(self.model.get_image_features, pixel_values=pixel_values)

    def encode_texts(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._run(self.model.get_text_features, **inputs)
