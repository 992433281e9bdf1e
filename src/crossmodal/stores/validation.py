"""What every backend checks the same way: modalities, item ids and metadata values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, InputError

__all__ = ["MAX_ID_LENGTH", "MODALITIES", "check_metadata", "check_modalities", "valid_id"]

MODALITIES: tuple[str, ...] = ("image", "text", "pair")
MAX_ID_LENGTH = 512


def check_modalities(modality: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``None``/``"all"`` -> None; ``"image"`` -> ("image",); a list -> a sorted tuple; anything else: ConfigError."""
    if modality is None or modality == "all":
        return None
    names = [modality] if isinstance(modality, str) else list(modality)
    bad = [m for m in names if m not in MODALITIES]
    if bad or not names:
        raise ConfigError(f"modality must be one of {', '.join(MODALITIES)} or 'all', got {modality!r}")
    return tuple(sorted(set(names)))


def valid_id(item_id: Any) -> bool:
    """Whether ``item_id`` can be an item's id: a non-empty string of valid Unicode, at most 512 characters."""
    if not isinstance(item_id, str) or not item_id or len(item_id) > MAX_ID_LENGTH:
        return False
    try:
        return item_id.isascii() or bool(item_id.encode("utf-8"))
    except UnicodeEncodeError:
        return False


def _check_scalar(key: str, value: Any) -> None:
    if isinstance(value, bool) or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise InputError(f"metadata {key!r}: integer {value} does not fit in 64 bits", input=key)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"metadata {key!r}: {value} is not a finite number", input=key)
        return
    raise InputError(
        f"metadata {key!r}: values must be str, int, float, bool, null or a list of those, "
        f"not {type(value).__name__}", input=key,
    )


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plain dict copy of ``metadata``, or :class:`InputError` naming the first bad key or value."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InputError(f"metadata must be a mapping of str to values, not {type(metadata).__name__}")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise InputError(f"metadata key {key!r} must be a non-empty string not starting with '$'", input=str(key))
        if value is None:
            out[key] = None
            continue
        if isinstance(value, (list, tuple)):
            for v in value:
                _check_scalar(key, v)
            out[key] = list(value)
            continue
        _check_scalar(key, value)
        out[key] = value
    return out
