"""Reading a model directory: which layout it is, where its files are, and its spec.

Two layouts load:

* **transformers**: ``config.json``, ``model.safetensors`` (or
  ``pytorch_model.bin``), tokenizer files and ``preprocessor_config.json``, as
  on the hub's ``openai/clip-vit-base-patch32``.
* **onnx**: ``onnx/vision_model.onnx`` and ``onnx/text_model.onnx`` (or the
  same names at the top level) next to ``tokenizer.json`` and
  ``preprocessor_config.json``, as on ``Xenova/clip-vit-base-patch32`` and as
  written by ``crossmodal models export``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError, ModelLoadError
from .spec import ImagePreprocess, ModelSpec, TextPreprocess

__all__ = ["MANIFEST", "ModelFiles", "detect_layout", "read_json", "spec_from_files", "weights_digest"]

#: written by ``crossmodal models export``; carries the weights identity across formats
MANIFEST = "crossmodal.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
ONNX_CANDIDATES = {
    "vision": ("onnx/vision_model.onnx", "vision_model.onnx"),
    "text": ("onnx/text_model.onnx", "text_model.onnx"),
}


@dataclass(frozen=True)
class ModelFiles:
    """Where one model's files are on disk, whatever their origin."""

    root: Path  # config.json, tokenizer and preprocessor files
    layout: Literal["transformers", "onnx"]
    vision_root: Path | None = None  # the vision tower's own directory when it lives apart (Qdrant)
    vision_graph: Path | None = None
    text_graph: Path | None = None
    vision_output: str | None = None
    text_output: str | None = None

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


def detect_layout(root: Path) -> ModelFiles:
    """Find the layout of ``root`` or say clearly why it is not a model directory."""
    if not root.is_dir():
        raise ModelLoadError(f"{root} is not a directory")
    graphs = {tower: next((root / c for c in cands if (root / c).is_file()), None) for tower, cands in ONNX_CANDIDATES.items()}
    if graphs["vision"] is not None and graphs["text"] is not None:
        return ModelFiles(root=root, layout="onnx", vision_graph=graphs["vision"], text_graph=graphs["text"])
    if (root / "config.json").is_file() and any((root / w).is_file() for w in WEIGHT_FILES):
        return ModelFiles(root=root, layout="transformers")
    found = sorted(p.name for p in root.iterdir())[:12]
    raise ModelLoadError(
        f"{root} is neither a transformers model directory (config.json + model.safetensors) nor an ONNX one "
        f"(onnx/vision_model.onnx + onnx/text_model.onnx); it holds: {', '.join(found) or 'nothing'}"
    )


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("text_config") or config


def _family(config: dict[str, Any], where: Path) -> str:
    model_type = str(config.get("model_type", ""))
    for family in ("chinese_clip", "siglip", "clip"):
        if model_type == family or model_type.startswith(family + "_"):
            return family
    raise ModelLoadError(
        f"{where}/config.json has model_type {model_type!r}; crossmodal supports clip, siglip and chinese_clip"
    )


def _dim(config: dict[str, Any], family: str) -> int:
    if family == "siglip":
        # SigLIP's towers end in heads of the text hidden size; there is no projection_dim.
        return int(_text_config(config).get("projection_size") or _text_config(config).get("hidden_size", 768))
    if "projection_dim" in config:
        return int(config["projection_dim"])
    return int(_text_config(config).get("projection_dim", 512))


def _text_preprocess(root: Path, config: dict[str, Any], family: str) -> TextPreprocess:
    max_pos = int(_text_config(config).get("max_position_embeddings", 77))
    context = max_pos
    tok_cfg_path = root / "tokenizer_config.json"
    if tok_cfg_path.is_file():
        limit = read_json(tok_cfg_path).get("model_max_length")
        if isinstance(limit, (int, float)) and 2 <= limit < max_pos:
            context = int(limit)
    if family == "siglip":
        return TextPreprocess("sentencepiece", context, "max_length", ("input_ids",))
    if family == "chinese_clip":
        return TextPreprocess("wordpiece", context, "longest", ("input_ids", "attention_mask", "token_type_ids"))
    return TextPreprocess("clip-bpe", context, "longest", ("input_ids", "attention_mask"))


_PROJECTION = {
    "clip": "linear (visual_projection / text_projection, no bias)",
    "siglip": "vision: attention-pooling head; text: linear head on the last token",
    "chinese_clip": "linear on the [CLS] token (text) and the pooled CLS (vision), no bias",
}


def spec_from_files(files: ModelFiles, name: str) -> ModelSpec:
    """Build the spec a directory describes, from its own config files."""
    config = read_json(files.root / "config.json")
    family = _family(config, files.root)
    try:
        image = ImagePreprocess.from_processor_config(read_json(files.image_root / "preprocessor_config.json"))
        text = _text_preprocess(files.root, config, family)
        return ModelSpec(
            name=name,
            family=family,  # type: ignore[arg-type]
            dim=_dim(config, family),
            image=image,
            text=text,
            projection=_PROJECTION[family],
        )
    except ConfigError as exc:
        raise ModelLoadError(f"{files.root}: {exc}") from exc


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
        return paths
    found = [files.root / w for w in WEIGHT_FILES if (files.root / w).is_file()]
    found += sorted(files.root.glob("model-*.safetensors"))
    return [p for p in found if not p.name.endswith(".json")] or found
