"""Export a transformers-layout CLIP / SigLIP / Chinese-CLIP directory to the ONNX layout.

The output mirrors the hub's ONNX repos (``onnx/vision_model.onnx``,
``onnx/text_model.onnx``, ``tokenizer.json``, ``preprocessor_config.json``,
``config.json``) plus ``crossmodal.json``, which carries the source's weights
identity so both formats load into the same space. An export is checked
against its source before it is reported as done: both towers are run on the
same inputs by transformers and by ONNX Runtime and must agree within
``atol`` after normalization; otherwise nothing is written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError, ModelLoadError
from .layout import MANIFEST, ModelFiles, detect_layout, read_json, spec_from_files, weight_paths, weights_digest
from .registry import ResolvedModel

__all__ = ["ExportReport", "ensure_onnx", "export_onnx"]

OPSET = 17
_COPY = ("config.json", "preprocessor_config.json", "tokenizer_config.json", "special_tokens_map.json",
         "tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model")
VERIFY_TEXTS = ["a photo of a cat", "a red circle on a white background", "一条龙", "x",
                "a much longer caption that goes on and on about a dog running on a sunny beach at dawn"]


@dataclass(frozen=True)
class ExportReport:
    out_dir: Path
    max_abs_diff_image: float
    max_abs_diff_text: float
    weights: str


def _wrappers(model: Any, text_inputs: tuple[str, ...]) -> tuple[Any, Any]:
    import torch

    from ..runtimes.torch import features

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            return features(self.model.get_image_features(pixel_values=pixel_values))

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            return features(self.model.get_text_features(**dict(zip(text_inputs, args))))

    return Vision().eval(), Text().eval()


def _export_graphs(model: Any, spec: Any, out: Path) -> None:
    import torch

    vision, text = _wrappers(model, spec.text.inputs)
    h, w = spec.image.output_size
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    pixels = torch.zeros(2, 3, h, w)
    ids = torch.ones(2, 7, dtype=torch.long)
    text_args = tuple(ids if name == "input_ids" else torch.ones_like(ids) if name == "attention_mask" else torch.zeros_like(ids)
                      for name in spec.text.inputs)
    with torch.inference_mode():
        torch.onnx.export(
            vision, (pixels,), str(out / "onnx" / "vision_model.onnx"), dynamo=False, opset_version=OPSET,
            input_names=["pixel_values"], output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        )
        torch.onnx.export(
            text, text_args, str(out / "onnx" / "text_model.onnx"), dynamo=False, opset_version=OPSET,
            input_names=list(spec.text.inputs), output_names=["text_embeds"],
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in spec.text.inputs}, "text_embeds": {0: "batch"}},
        )


def _write_tokenizer(src: Path, out: Path) -> None:
    for name in _COPY:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    if (out / "tokenizer.json").is_file() or (out / "spiece.model").is_file():
        return
    # Hub repos like OFA-Sys/chinese-clip ship only vocab files: write the fast form once.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(src))
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        backend.save(str(out / "tokenizer.json"))


def _verify(src: ModelFiles, out: Path, model: Any, spec: Any, atol: float) -> tuple[float, float]:
    import torch

    from ..embedder import l2_normalize
    from ..preprocessing.texts import encode, load_tokenizer
    from ..runtimes.base import RuntimeOptions
    from ..runtimes.onnx import OnnxEncoder
    from ..runtimes.torch import features

    files = detect_layout(out)
    assert files.vision_graph is not None and files.text_graph is not None
    onnx = OnnxEncoder(files.vision_graph, files.text_graph, spec.dim, RuntimeOptions(threads=1))
    rng = np.random.default_rng(0)
    h, w = spec.image.output_size
    pixels = rng.standard_normal((3, 3, h, w)).astype(np.float32)
    inputs = encode(load_tokenizer(src.root, spec.text), VERIFY_TEXTS)
    with torch.inference_mode():
        ref_img = features(model.get_image_features(pixel_values=torch.from_numpy(pixels))).numpy()
        ref_txt = features(model.get_text_features(**{k: torch.from_numpy(v) for k, v in inputs.items()})).numpy()
    d_img = float(np.abs(l2_normalize(onnx.encode_images(pixels)) - l2_normalize(ref_img)).max())
    d_txt = float(np.abs(l2_normalize(onnx.encode_texts(inputs)) - l2_normalize(ref_txt)).max())
    if not (d_img <= atol and d_txt <= atol):
        raise ExportError(
            f"the ONNX export disagrees with its source: max |diff| image {d_img:.2e}, text {d_txt:.2e} > {atol:.0e}"
        )
    return d_img, d_txt


def export_onnx(src: str | Path, out: str | Path, *, atol: float = 1e-5, overwrite: bool = False) -> ExportReport:
    """Export the transformers model in ``src`` to the ONNX layout in ``out``, verified against ``src``."""
    from ..runtimes.torch import load_reference_model, quiet_transformers

    src, out = Path(src).expanduser(), Path(out).expanduser()
    files = detect_layout(src)
    if files.layout != "transformers":
        raise ModelLoadError(f"{src} is already in the ONNX layout; export needs a transformers-layout directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    manifest = read_json(src / MANIFEST) if (src / MANIFEST).is_file() else {}
    weights = str(manifest.get("weights") or f"sha256:{weights_digest(weight_paths(files))}")
    spec = spec_from_files(files, str(manifest.get("name") or src))
    model = load_reference_model(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        with quiet_transformers():
            _export_graphs(model, spec, tmp)
        _write_tokenizer(src, tmp)
        (tmp / MANIFEST).write_text(json.dumps(
            {"name": spec.name, "weights": weights, "family": spec.family, "dim": spec.dim, "exported_from": str(src)},
            indent=2,
        ))
        d_img, d_txt = _verify(files, tmp, model, spec, atol)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportReport(out_dir=out, max_abs_diff_image=d_img, max_abs_diff_text=d_txt, weights=weights)


def ensure_onnx(resolved: ResolvedModel, cache_dir: Path | None) -> ModelFiles:
    """ONNX files for a transformers-layout model: exported once into the cache, then reused."""
    from ..settings import default_cache_dir

    root = (cache_dir or default_cache_dir()) / "exports" / resolved.weights.replace(":", "-").replace("/", "--")
    if not (root / MANIFEST).is_file():
        export_onnx(resolved.files.root, root, overwrite=True)
    return detect_layout(root)
