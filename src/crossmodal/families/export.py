"""Export a model to the ONNX layout, checked against its source before anything is written.

:func:`write_export` is shared by every family: it reads the source's weights
identity, lets the family write and check its graphs in a temporary
directory, writes ``crossmodal.json`` and moves the result into place.
:func:`export_two_towers` and :func:`check_two_towers` are the graph export
and its check for the transformers two-tower families (CLIP, SigLIP,
Chinese-CLIP): the output mirrors the hub's ONNX repos (``onnx/vision_model.onnx``,
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
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError, ModelLoadError
from ..models.files import MANIFEST, ModelFiles, read_json, weight_paths, weights_digest
from ..models.spec import ModelSpec
from .base import ExportReport, Family

__all__ = ["check_two_towers", "export_two_towers", "write_export"]

OPSET = 17
_COPY = ("config.json", "preprocessor_config.json", "tokenizer_config.json", "special_tokens_map.json",
         "tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model")
VERIFY_TEXTS = ["a photo of a cat", "a red circle on a white background", "一条龙", "x",
                "a much longer caption that goes on and on about a dog running on a sunny beach at dawn"]


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


def export_two_towers(model: Any, spec: ModelSpec, out: Path) -> None:
    """Both towers of the transformers ``model`` as ``out/onnx/vision_model.onnx`` and ``text_model.onnx``."""
    import torch

    vision, text = _wrappers(model, spec.text.inputs)
    assert spec.image is not None  # both towers
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


def write_tokenizer(src: Path, out: Path) -> None:
    """The tokenizer files of ``src`` in ``out``, with a ``tokenizer.json`` where ``src`` has only vocab files."""
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


def check_two_towers(src: ModelFiles, out: Path, model: Any, spec: ModelSpec, atol: float) -> dict[str, float]:
    """Run both exported graphs in ``out`` and the source ``model`` on the same inputs; refuse a gap over ``atol``."""
    import torch

    from ..embedder import l2_normalize
    from ..preprocessing.texts import encode, load_tokenizer
    from ..runtimes.base import RuntimeOptions
    from ..runtimes.onnx import OnnxEncoder
    from ..runtimes.torch import features

    onnx = OnnxEncoder(out / "onnx" / "vision_model.onnx", out / "onnx" / "text_model.onnx", spec.dim,
                       RuntimeOptions(threads=1))
    rng = np.random.default_rng(0)
    assert spec.image is not None  # both towers
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
    return {"image": d_img, "text": d_txt}


def write_export(family: Family, files: ModelFiles, out: str | Path, *, atol: float = 1e-5,
                 overwrite: bool = False) -> ExportReport:
    """Export the model in ``files`` (one ``family`` recognizes) to the ONNX layout in ``out``, checked first."""
    src, out = files.root, Path(out).expanduser()
    if files.layout == "onnx":
        raise ModelLoadError(f"{src} is already in the ONNX layout; export needs a transformers-layout directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    manifest = read_json(src / MANIFEST) if (src / MANIFEST).is_file() else {}
    weights = str(manifest.get("weights") or f"sha256:{weights_digest(weight_paths(files))}")
    spec = family.read_spec(files, str(manifest.get("name") or src))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        diffs = family.export_onnx(files, spec, tmp, atol)
        (tmp / MANIFEST).write_text(json.dumps(
            {"name": spec.name, "weights": weights, "family": spec.family, "dim": spec.dim, "exported_from": str(src)},
            indent=2,
        ))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportReport(out_dir=out, weights=weights, diffs=diffs)
