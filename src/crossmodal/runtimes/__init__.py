"""Runtimes: one module per inference engine (ONNX Runtime, PyTorch).

A runtime module holds what is particular to its engine (sessions, devices,
precision, int8 graphs); a model family (:mod:`crossmodal.families`) uses it to
load its towers. Modules are imported only when used, so the default ONNX
runtime never imports torch.
"""

from __future__ import annotations

from .base import Encoder, PairEncoder, RuntimeOptions, SparseVector, TextOutputs, TextOutputsEncoder

__all__ = ["Encoder", "PairEncoder", "RuntimeOptions", "SparseVector", "TextOutputs", "TextOutputsEncoder"]

