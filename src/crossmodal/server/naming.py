"""The ids the served model answers to, and model names fit to show a client.

A model loaded from a directory is named by its path (or by the path it was
exported from), which must not leave the server and which no client should
have to know. So the service answers to clean ids instead:

* the names the operator gives (``crossmodal serve --served-model-name NAME``,
  repeatable; the first is the id ``/v1/models`` lists first and responses
  carry, the others are aliases);
* else the catalog name (``openai/clip-vit-base-patch32``, also accepted as
  ``clip-vit-base-patch32``);
* else, for a model directory, the directory's name.

:func:`public_model_name` does the same for the model names collections
record, which may also be paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ServedNames", "looks_like_path", "public_model_name"]


def looks_like_path(name: str) -> bool:
    """Whether a model name is a file system path rather than a catalog or hub name."""
    return os.path.isabs(name) or name.startswith(("~", "./", "../")) or "\\" in name


def public_model_name(name: str) -> str:
    """``name``, or for a path its last component: what a client may see of a model's name."""
    if not looks_like_path(name):
        return name
    return Path(name.rstrip("/\\")).name or "model"


def _default_id(model: Any) -> str:
    name = str(model.name)
    if not looks_like_path(name):
        return name
    resolved = getattr(model, "resolved", None)
    root = getattr(getattr(resolved, "files", None), "root", None)
    if root is not None and str(root) not in ("", "."):
        return Path(os.path.realpath(root)).name or public_model_name(name)
    return public_model_name(name)


def _hidden(model: Any) -> list[str]:
    """Paths the model's names and files reveal, to be kept out of every message."""
    paths = []
    name = str(model.name)
    if looks_like_path(name):
        paths.append(name)
    resolved = getattr(model, "resolved", None)
    root = getattr(getattr(resolved, "files", None), "root", None)
    if root is not None and str(root) not in ("", "."):
        paths += [str(root), os.path.realpath(root)]
    return paths


@dataclass(frozen=True)
class ServedNames:
    """The ids of the served model: ``ids[0]`` is its id in listings and responses; all are accepted."""

    ids: tuple[str, ...]
    accepted: frozenset[str]
    hidden_paths: tuple[str, ...]

    @classmethod
    def of(cls, model: Any, given: tuple[str, ...] = ()) -> ServedNames:
        hidden = tuple(_hidden(model))
        if given:
            return cls(tuple(given), frozenset(given), hidden)
        first = _default_id(model)
        accepted = {first}
        if not looks_like_path(str(model.name)):
            accepted.add(first.rsplit("/", 1)[-1])  # "clip-vit-base-patch32" for "openai/clip-vit-base-patch32"
        return cls((first,), frozenset(accepted), hidden)

    @property
    def primary(self) -> str:
        return self.ids[0]
