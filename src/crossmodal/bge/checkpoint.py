"""Reading checkpoints into crossmodal's BGE modules, strictly.

A checkpoint is a flat ``name -> tensor`` mapping (a ``.pth``/``.pt``/``.bin``
torch state dict or a ``.safetensors`` file). :func:`load_strict` copies it
into a module through an explicit renaming, and refuses a checkpoint that
lacks a tensor the module needs, has one of the wrong shape, or carries a
tensor nobody asked for (other than the ones the reference itself never
applies, which the caller names).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

__all__ = ["count_indexed", "load_strict", "read_config", "read_state_dict", "strip_prefix"]


def read_state_dict(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    """Every tensor in the checkpoint file ``path``, on the CPU (memory-mapped with ``mmap``, to read shapes)."""
    import torch

    if not path.is_file():
        raise ModelLoadError(f"checkpoint file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            state = torch.load(str(path), map_location="cpu", weights_only=True)  # a legacy (non-zip) file
    except Exception as exc:  # torch and safetensors raise many unrelated types for a bad file
        raise ModelLoadError(f"cannot read checkpoint {path}: {exc}") from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path} is not a state dict (a mapping of names to tensors)")
    return dict(state)


def read_config(path: Path) -> dict[str, Any]:
    import json

    if not path.is_file():
        raise ModelLoadError(f"model config not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object")
    return data


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The tensors under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def count_indexed(state: Mapping[str, Any], prefix: str) -> int:
    """How many consecutive ``prefix{i}.`` groups ``state`` holds (layers, blocks)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state for m in [pattern.match(k)] if m}
    n = 0
    while n in found:
        n += 1
    if found and n != len(found):
        raise ModelLoadError(f"checkpoint groups {prefix}N are not numbered 0..{max(found)} without gaps")
    return n


def load_strict(
    module: Any,
    state: Mapping[str, Any],
    rename: Callable[[str], str | None],
    *,
    source: str,
    ignore: Iterable[str] = (),
) -> None:
    """Copy ``state`` into ``module``: ``rename`` maps a checkpoint name to a module name (None: not ours).

    Names matching an ``ignore`` regular expression are dropped silently (tensors
    the reference loads but never applies); any other unclaimed tensor, and any
    module tensor left without a value, is an error naming ``source``.
    """
    import torch

    ignored = [re.compile(p) for p in ignore]
    targets = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    filled: set[str] = set()
    unused: list[str] = []
    for key, value in state.items():
        name = rename(key)
        if name is None or name not in targets:
            if not any(p.fullmatch(key) for p in ignored):
                unused.append(key)
            continue
        target = targets[name]
        if tuple(target.shape) != tuple(value.shape):
            raise ModelLoadError(
                f"{source}: tensor {key} has shape {tuple(value.shape)}, the model expects {tuple(target.shape)}"
            )
        with torch.no_grad():
            target.copy_(value.to(target.dtype))
        filled.add(name)
    missing = sorted(set(targets) - filled)
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
        if unused:
            parts.append(f"{len(unused)} unexpected tensors (e.g. {', '.join(sorted(unused)[:3])})")
        raise ModelLoadError(f"{source} does not match the model: " + "; ".join(parts))
