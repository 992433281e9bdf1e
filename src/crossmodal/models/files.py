"""A model's files on disk, and the identity of its weights: data every layer reads.

Which directory layouts a model family recognizes, and how a spec is read from
its config files, belong to the family (:mod:`crossmodal.families`); this
module only holds what they find (:class:`ModelFiles`, :class:`ResolvedModel`)
and the helpers every family shares (JSON reading, weight hashing).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .spec import ModelSpec

__all__ = ["MANIFEST", "WEIGHT_FILES", "ModelFiles", "ResolvedModel", "read_json", "weight_paths", "weights_digest"]

#: written by ``crossmodal models export``; carries the weights identity across formats
MANIFEST = "crossmodal.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


@dataclass(frozen=True)
class ModelFiles:
    """Where one model's files are on disk, whatever their origin."""

    root: Path  # config.json, tokenizer and preprocessor files
    #: "transformers" or "onnx" for the built-in families; a family may name its own layouts
    layout: str
    vision_root: Path | None = None  # the vision tower's own directory when it lives apart (Qdrant)
    vision_graph: Path | None = None
    text_graph: Path | None = None
    vision_output: str | None = None
    text_output: str | None = None

    #: files a family needs beyond the towers' graphs (name -> path), e.g. extra heads beside the weights
    parts: tuple[tuple[str, Path], ...] = ()

    def part(self, name: str) -> Path | None:
        for key, path in self.parts:
            if key == name:
                return path
        return None

    @property
    def image_root(self) -> Path:
        """Directory holding ``preprocessor_config.json``."""
        return self.vision_root or self.root


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"missing {path.name} in {path.parent}") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object")
    return data


@dataclass(frozen=True)
class ResolvedModel:
    """A spec plus the files that realise it, ready for a runtime."""

    spec: ModelSpec
    files: ModelFiles
    #: identity of the trained weights, shared by every packaging of them
    weights: str
    origin: str  # "catalog", "hub" or "local"


def weights_digest(paths: list[Path]) -> str:
    """Content hash of weight files (streamed; a ViT-B/32 takes about a second)."""
    h = hashlib.sha256()
    for path in sorted(paths):
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


def weight_paths(files: ModelFiles) -> list[Path]:
    if files.layout == "onnx":
        paths = [p for p in (files.vision_graph, files.text_graph) if p is not None]
        # External-data graphs keep their tensors beside the .onnx file.
        for p in list(paths):
            for suffix in ("_data", ".data"):
                extra = p.with_name(p.name + suffix)
                if extra.is_file():
                    paths.append(extra)
        return paths + [p for _, p in files.parts]
    found = [files.root / w for w in WEIGHT_FILES if (files.root / w).is_file()]
    found += sorted(files.root.glob("model-*.safetensors"))
    found += [p for _, p in files.parts]
    return [p for p in found if not p.name.endswith(".json")] or found
