"""Runtimes: one module per inference engine, each with ``load(resolved, options) -> Encoder``.

Adding a runtime means adding one module and one line in :data:`RUNTIMES`, and
passing the shared parity tests. Modules are imported only when used, so the
default ONNX runtime never imports torch.
"""

from __future__ import annotations

import importlib

from ..errors import ModelLoadError
from ..models.registry import ResolvedModel
from .base import Encoder, RuntimeOptions

__all__ = ["RUNTIMES", "Encoder", "RuntimeOptions", "load_encoder"]

RUNTIMES: dict[str, str] = {
    "onnx": "crossmodal.runtimes.onnx",
    "torch": "crossmodal.runtimes.torch",
}


def load_encoder(runtime: str, resolved: ResolvedModel, options: RuntimeOptions) -> Encoder:
    try:
        module = importlib.import_module(RUNTIMES[runtime])
    except KeyError:
        raise ModelLoadError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}") from None
    return module.load(resolved, options)
