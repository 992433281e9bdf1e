"""The BGE-M3 family: one XLM-RoBERTa pass, three text outputs (dense, sparse lexical, ColBERT multi-vector).

Two layouts:

* the hub's: an XLM-RoBERTa directory (``config.json``, ``model.safetensors``
  or ``pytorch_model.bin``, the tokenizer) with ``colbert_linear.pt`` and
  ``sparse_linear.pt`` beside it;
* an ONNX export (``crossmodal models export``): ``onnx/m3.onnx``, the
  tokenizer files and ``bge.json``.

Texts only: the model has no image tower. The dense vector is the normalized
CLS token; the sparse output is the reference's lexical weights after its own
post-processing (:mod:`crossmodal.bge.m3_outputs`), the multi-vector output its
normalized ColBERT vectors. A missing head file is an error naming it (BAAI's
code silently uses random heads instead), unless only the dense output is
asked for (``LoadOptions(outputs=("dense",))``).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError, UnsupportedInput
from ..models.files import WEIGHT_FILES, ModelFiles, ResolvedModel, read_json
from ..models.spec import Capabilities, ModelSpec
from ..preprocessing.texts import Tokenizer, load_tokenizer
from ..runtimes.base import RuntimeOptions, TextOutputs, TextOutputsEncoder
from .base import TinyModelOptions
from .bge_common import (
    cached_export,
    check_runtime,
    checked_diffs,
    max_tokens,
    onnx_manifest,
    refuse_onnx_source,
    text_preprocess,
)

__all__ = ["BGE_M3", "BgeM3Family", "M3Towers"]

CHECKPOINT_LAYOUT = "bge-m3"
ONNX_LAYOUT = "bge-m3-onnx"
HEADS = ("colbert_linear.pt", "sparse_linear.pt")
PROJECTION = "CLS of the last hidden state (dense); ReLU(sparse_linear) per token (sparse); colbert_linear (multivector)"


class M3Towers:
    """BGE-M3's graph behind the :class:`~crossmodal.runtimes.base.TextOutputsEncoder` seam.

    ``run`` is the graph: token arrays -> ``(cls,)`` or ``(cls, token_weights, colbert)``.
    """

    def __init__(self, run: object, dim: int, excluded_ids: frozenset[int], name: str) -> None:
        self._run = run
        self.dim = dim
        self.excluded_ids = excluded_ids
        self.name = name

    def _raw(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        return tuple(self._run(inputs["input_ids"], inputs["attention_mask"]))  # type: ignore[operator]

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        raise UnsupportedInput(f"model {self.name!r} has no image tower; it embeds texts")

    def encode_texts(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._raw(inputs)[0], dtype=np.float32)

    def encode_text_outputs(self, inputs: dict[str, np.ndarray], outputs: Collection[str]) -> TextOutputs:
        from ..bge.m3_outputs import m3_outputs

        raw = self._raw(inputs)
        sparse, multi = "sparse" in outputs, "multivector" in outputs
        if (sparse or multi) and len(raw) < 3:
            raise ModelLoadError(f"model {self.name!r} was loaded for its dense output only")
        post = m3_outputs(raw, inputs["input_ids"], inputs["attention_mask"], excluded_ids=self.excluded_ids,
                          dense=False, sparse=sparse, colbert=multi)
        return TextOutputs(dense=np.asarray(raw[0], dtype=np.float32), sparse=post.sparse, multivector=post.colbert)


def _torch_run(model: object, options: RuntimeOptions) -> object:
    from ..runtimes.torch import TorchEncoder

    encoder = TorchEncoder(model, 1, options)  # the device, threads and precision handling; its towers go unused

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, ...]:
        return encoder._run_outputs(encoder.model, input_ids=input_ids, attention_mask=attention_mask)

    return run


class BgeM3Family:
    name = "bge_m3"
    capabilities = Capabilities(inputs=("text",), outputs=("dense", "sparse", "multivector"))
    runtimes: tuple[str, ...] = ("onnx", "torch")
    layouts: tuple[str, ...] = (
        "a BGE-M3 directory (an XLM-RoBERTa config.json + weights, colbert_linear.pt, sparse_linear.pt)",
        "a BGE-M3 ONNX export (onnx/m3.onnx + bge.json)",
    )

    # -- layouts and specs -------------------------------------------------------------------------

    def detect(self, root: Path) -> ModelFiles | None:
        if onnx_manifest(root, "bge-m3") is not None:
            return ModelFiles(root=root, layout=ONNX_LAYOUT, parts=(("m3", root / "onnx" / "m3.onnx"),))
        if any(root.glob("Visualized_*.pth")):
            return None  # a Visualized-BGE checkpoint beside the text model makes it that model
        if not ((root / "config.json").is_file() and any((root / w).is_file() for w in WEIGHT_FILES)):
            return None
        if read_json(root / "config.json").get("model_type") != "xlm-roberta":
            return None
        heads = tuple((name, root / name) for name in HEADS if (root / name).is_file())
        return ModelFiles(root=root, layout=CHECKPOINT_LAYOUT, parts=heads)

    def claims(self, files: ModelFiles) -> bool:
        return files.layout in (CHECKPOINT_LAYOUT, ONNX_LAYOUT)

    def read_spec(self, files: ModelFiles, name: str) -> ModelSpec:
        config = read_json(files.root / "config.json")
        if files.layout == ONNX_LAYOUT:
            m = read_json(files.root / "bge.json")
            dim, context = int(m["hidden_size"]), int(m["max_tokens"])
        else:
            dim, context = int(config["hidden_size"]), max_tokens(config)
        return ModelSpec(name=name, family=self.name, dim=dim, image=None, text=text_preprocess(config, context),
                         projection=PROJECTION)

    def _missing_heads(self, files: ModelFiles) -> tuple[str, ...]:
        if files.layout == ONNX_LAYOUT:
            manifest = read_json(files.root / "bge.json")
            return () if manifest.get("heads") else tuple(manifest.get("missing_heads") or HEADS)
        return tuple(name for name in HEADS if files.part(name) is None)

    # -- runtimes --------------------------------------------------------------------------------

    def load_encoder(self, resolved: ResolvedModel, runtime: str, options: RuntimeOptions) -> TextOutputsEncoder:
        check_runtime(self, runtime, options)
        files, spec = resolved.files, resolved.spec
        heads = options.wants("sparse") or options.wants("multivector")
        missing = self._missing_heads(files)
        if heads and missing:
            what = "was exported without" if files.layout == ONNX_LAYOUT else "has no"
            raise ModelLoadError(
                f"{files.root} {what} {' and '.join(missing)}: the sparse and multivector outputs need both head "
                "files beside the model. Put them there, or load the dense output only (outputs=('dense',))")
        from ..bge.tokens import BgeTokenizer

        if runtime == "torch":
            if files.layout == ONNX_LAYOUT:
                raise ModelLoadError(f"runtime 'torch' needs the BGE-M3 checkpoint directory; {files.root} is an ONNX "
                                     "export. Use runtime='onnx' for it")
            from ..bge.m3 import load_m3

            run = _torch_run(load_m3(files.root, heads=heads), options)
            root = files.root
        else:
            from ..bge.onnx_run import OnnxM3Graphs

            root = files.root if files.layout == ONNX_LAYOUT else cached_export(self, resolved, options.derived_cache)
            run = OnnxM3Graphs(root, threads=options.threads).run
        excluded = BgeTokenizer.from_dir(root).specials.lexical_exclusions
        return M3Towers(run, spec.dim, excluded, spec.name)

    def load_tokenizer(self, resolved: ResolvedModel) -> Tokenizer:
        return load_tokenizer(resolved.files.root, resolved.spec.text)

    def export_onnx(self, files: ModelFiles, spec: ModelSpec, out: Path, atol: float) -> dict[str, float]:
        """The graph with the heads when both head files are there, else the dense output alone (recorded)."""
        from ..bge.m3 import load_m3
        from ..bge.onnx_export import export_m3

        refuse_onnx_source(files, ONNX_LAYOUT)
        export_m3(load_m3(files.root), files.root, out, atol=atol)
        return checked_diffs(out)

    # -- test models -----------------------------------------------------------------------------

    def build_test_model(self, out: Path, options: TinyModelOptions) -> Path:
        """``tiny``: width 64, 2 layers, 128 tokens; ``base``: the released architecture (24 layers, 8192 tokens)."""
        from ..bge.builders import build_m3

        return build_m3(out, size=options.size, seed=options.seed, corpus=tuple(options.corpus))


BGE_M3 = BgeM3Family()
