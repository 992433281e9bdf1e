"""What the two BAAI families (:mod:`.visualized_bge`, :mod:`.bge_m3`) share.

Both read a BGE text model's ``config.json`` (BERT for bge-base-en-v1.5,
XLM-RoBERTa for bge-m3), run crossmodal's own graphs (:mod:`crossmodal.bge`)
rather than a transformers model, and load ONNX exports of those graphs:
``onnx/*.onnx`` beside ``bge.json``, written by ``crossmodal models export``
(or, for runtime ``onnx`` on a checkpoint directory, once into the cache).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError, ModelLoadError
from ..models.files import MANIFEST, ModelFiles, ResolvedModel, read_json
from ..models.spec import TextPreprocess
from ..runtimes.base import RuntimeOptions
from .base import Family

__all__ = ["BGE_MANIFEST", "cached_export", "check_runtime", "checked_diffs", "max_tokens", "onnx_manifest",
           "refuse_onnx_source", "text_preprocess"]

#: written beside the exported graphs by :mod:`crossmodal.bge.onnx_export`
BGE_MANIFEST = "bge.json"
_TOKENIZERS: dict[str, Literal["wordpiece", "sentencepiece"]] = {"bert": "wordpiece", "xlm-roberta": "sentencepiece"}


def onnx_manifest(root: Path, kind: str) -> dict[str, Any] | None:
    """``bge.json`` of an export of ``kind`` ("visualized-bge", "bge-m3") in ``root``, else None."""
    path = root / BGE_MANIFEST
    if not path.is_file():
        return None
    manifest = read_json(path)
    return manifest if manifest.get("family") == kind else None


def max_tokens(config: dict[str, Any]) -> int:
    """The longest token sequence the text model's position table holds (RoBERTa skips ids up to its pad id)."""
    try:
        positions = int(config["max_position_embeddings"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError("the text model's config.json has no max_position_embeddings") from exc
    if config.get("model_type") == "xlm-roberta":
        return positions - (int(config.get("pad_token_id", 1)) + 1)
    return positions


def text_preprocess(config: dict[str, Any], context: int, pair_context: int | None = None) -> TextPreprocess:
    model_type = str(config.get("model_type", ""))
    if model_type not in _TOKENIZERS:
        raise ModelLoadError(f"a BGE text model is BERT or XLM-RoBERTa, not {model_type!r}")
    return TextPreprocess(_TOKENIZERS[model_type], context, "longest", ("input_ids", "attention_mask"),
                          pair_context_length=pair_context)


def check_runtime(family: Family, runtime: str, options: RuntimeOptions) -> None:
    if runtime not in family.runtimes:
        raise ModelLoadError(f"the {family.name} family runs on {', '.join(family.runtimes)}, not {runtime!r}")
    if runtime == "onnx" and options.mode == "fast":
        raise ConfigError(f"mode 'fast' is not available for {family.name} on ONNX Runtime; use mode 'exact', or "
                          "runtime 'torch' on a GPU (bf16)")
    if runtime == "onnx" and options.device not in (None, "cpu"):
        raise ConfigError(f"{family.name}'s ONNX graphs run on the CPU; use runtime 'torch' for device "
                          f"{options.device!r}")


def cached_export(family: Family, resolved: ResolvedModel, cache_dir: Path) -> Path:
    """The ONNX export of a checkpoint directory: written once into the cache, then reused."""
    from .export import write_export

    root = cache_dir / "exports" / resolved.weights.replace(":", "-").replace("/", "--")
    if not (root / MANIFEST).is_file() or not (root / BGE_MANIFEST).is_file():
        write_export(family, resolved.files, root, overwrite=True)
    return root


def checked_diffs(out: Path) -> dict[str, float]:
    """The differences from torch the export in ``out`` was checked at (recorded in its ``bge.json``)."""
    return {str(k): float(v) for k, v in dict(read_json(out / BGE_MANIFEST).get("checked", {})).items()}


def refuse_onnx_source(files: ModelFiles, onnx_layout: str) -> None:
    if files.layout == onnx_layout:
        raise ModelLoadError(f"{files.root} is already an ONNX export; export needs the checkpoint directory")
