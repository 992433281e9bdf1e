"""The Visualized-BGE family: BAAI's EVA02-CLIP vision tower fused into a BGE text encoder.

Two layouts:

* a checkpoint directory, as users download it: the one ``Visualized_*.pth``
  (``Visualized_base_en_v1.5.pth``, ``Visualized_m3.pth``) beside the BGE text
  model's ``config.json`` and tokenizer files;
* an ONNX export (``crossmodal models export``): ``onnx/text.onnx``,
  ``onnx/pair.onnx``, the tokenizer files and ``bge.json``.

Texts run the text encoder; image+text pairs run the fused graph (the image's
patch tokens before the text's, in one sequence: ``Fusion(kind="graph")``);
an image alone is a pair with an empty text, as in the reference. A pair's
text can only take the positions the image tokens leave
(``TextPreprocess.pair_context_length``: 316 tokens for the base-en model) and
is cut to them, or refused with ``truncate=False``. The image preprocessing is
the reference's (:func:`crossmodal.bge.images.visualized_image`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from ..models.bge_catalog import CHECKPOINT_LAYOUT, CHECKPOINT_PART
from ..models.files import ModelFiles, ResolvedModel, read_json
from ..models.spec import Capabilities, Fusion, ModelSpec
from ..preprocessing.texts import Tokenizer, load_tokenizer
from ..runtimes.base import PairEncoder, RuntimeOptions
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

__all__ = ["VISUALIZED_BGE", "VisualizedBgeFamily", "VisualizedTowers"]

ONNX_LAYOUT = "visualized-bge-onnx"
#: ModelFiles.parts holds the checkpoint under this name (the hub keeps it in another repo than the text model)
CHECKPOINT = CHECKPOINT_PART
_VISUAL = "model_visual.visual."
PROJECTION = "EVA02-CLIP patch tokens -> visual_proj -> the BGE text encoder; CLS pooling"


class VisualizedTowers:
    """Visualized-BGE's graphs behind the :class:`~crossmodal.runtimes.base.PairEncoder` seam (ONNX Runtime)."""

    def __init__(self, graphs: object, dim: int, empty_prompt: list[int]) -> None:
        self.graphs = graphs
        self.dim = dim
        self._empty = np.asarray([empty_prompt], dtype=np.int64)

    def encode_texts(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.graphs.text(inputs["input_ids"], inputs["attention_mask"]),  # type: ignore[attr-defined]
                          dtype=np.float32)

    def encode_pairs(self, pixel_values: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
        out = self.graphs.pair(pixel_values, inputs["input_ids"], inputs["attention_mask"])  # type: ignore[attr-defined]
        return np.asarray(out, dtype=np.float32)

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        ids = np.repeat(self._empty, len(pixel_values), axis=0)
        return self.encode_pairs(pixel_values, {"input_ids": ids, "attention_mask": np.ones_like(ids)})


def _torch_towers(model: object, dim: int, options: RuntimeOptions, empty_prompt: list[int]) -> PairEncoder:
    from ..runtimes.torch import TorchEncoder

    class TorchVisualizedTowers(TorchEncoder):
        """The torch modules on the runtime's device and precision (TorchEncoder's staging and modes)."""

        def __init__(self) -> None:
            super().__init__(model, dim, options)
            self._empty = np.asarray([empty_prompt], dtype=np.int64)

        def encode_texts(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
            return self._run(self.model.encode_text, input_ids=inputs["input_ids"],
                             attention_mask=inputs["attention_mask"])

        def encode_pairs(self, pixel_values: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
            return self._run(self.model.encode_pair, pixel_values=pixel_values, input_ids=inputs["input_ids"],
                             attention_mask=inputs["attention_mask"])

        def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
            ids = np.repeat(self._empty, len(pixel_values), axis=0)
            return self.encode_pairs(pixel_values, {"input_ids": ids, "attention_mask": np.ones_like(ids)})

    return TorchVisualizedTowers()


def _empty_prompt(root: Path) -> list[int]:
    from ..bge.tokens import BgeTokenizer

    return BgeTokenizer.from_dir(root).ids("")


class VisualizedBgeFamily:
    name = "visualized_bge"
    capabilities = Capabilities(inputs=("text", "image", "pair"), outputs=("dense",))
    runtimes: tuple[str, ...] = ("onnx", "torch")
    layouts: tuple[str, ...] = (
        "a Visualized-BGE directory (one Visualized_*.pth beside the BGE text model's config.json and tokenizer)",
        "a Visualized-BGE ONNX export (onnx/text.onnx + onnx/pair.onnx + bge.json)",
    )

    # -- layouts and specs -------------------------------------------------------------------------

    def detect(self, root: Path) -> ModelFiles | None:
        if onnx_manifest(root, "visualized-bge") is not None:
            return ModelFiles(root=root, layout=ONNX_LAYOUT,
                              parts=(("text", root / "onnx" / "text.onnx"), ("pair", root / "onnx" / "pair.onnx")))
        if not any(root.glob("Visualized_*.pth")):
            return None
        from ..bge.visualized import find_weights  # imports torch only once a checkpoint is there

        return ModelFiles(root=root, layout=CHECKPOINT_LAYOUT, parts=((CHECKPOINT, find_weights(root)),))

    def claims(self, files: ModelFiles) -> bool:
        return files.layout in (CHECKPOINT_LAYOUT, ONNX_LAYOUT)

    def read_spec(self, files: ModelFiles, name: str) -> ModelSpec:
        config = read_json(files.root / "config.json")
        if files.layout == ONNX_LAYOUT:
            m = read_json(files.root / "bge.json")
            dim, size = int(m["hidden_size"]), int(m["image_size"])
            context, pair = int(m["max_text_tokens"]), int(m["max_pair_tokens"])
        else:
            size, image_tokens = self._vision_shape(files)
            dim, context = int(config["hidden_size"]), max_tokens(config)
            pair = int(config["max_position_embeddings"]) - image_tokens
            if pair < 2:
                raise ModelLoadError(f"{files.root}: the text model's {config['max_position_embeddings']} positions "
                                     f"leave no room for a text after {image_tokens} image tokens")
        from ..bge.images import visualized_image

        return ModelSpec(name=name, family=self.name, dim=dim, image=visualized_image(size),
                         text=text_preprocess(config, context, min(pair, context)), projection=PROJECTION,
                         fusion=Fusion(kind="graph"))

    def _vision_shape(self, files: ModelFiles) -> tuple[int, int]:
        """(image size, image tokens) of the EVA tower in the checkpoint (read memory-mapped: shapes only)."""
        from ..bge.checkpoint import read_state_dict, strip_prefix
        from ..bge.eva import EvaConfig

        path = self._checkpoint(files)
        cfg = EvaConfig.from_state_dict(strip_prefix(read_state_dict(path, mmap=True), _VISUAL), str(path))
        return cfg.image_size, cfg.num_patches

    def _checkpoint(self, files: ModelFiles) -> Path:
        path = files.part(CHECKPOINT)
        if path is None or not path.is_file():
            raise ModelLoadError(f"{files.root}: the Visualized-BGE checkpoint {path} is missing")
        return path

    # -- runtimes --------------------------------------------------------------------------------

    def load_encoder(self, resolved: ResolvedModel, runtime: str, options: RuntimeOptions) -> PairEncoder:
        check_runtime(self, runtime, options)
        files, dim = resolved.files, resolved.spec.dim
        if runtime == "torch":
            if files.layout == ONNX_LAYOUT:
                raise ModelLoadError(f"runtime 'torch' needs the Visualized_*.pth checkpoint; {files.root} is an ONNX "
                                     "export. Use runtime='onnx' for it")
            from ..bge.visualized import load_visualized

            model = load_visualized(files.root, self._checkpoint(files))
            return _torch_towers(model, dim, options, _empty_prompt(files.root))
        from ..bge.onnx_run import OnnxVisualizedGraphs

        root = files.root if files.layout == ONNX_LAYOUT else cached_export(self, resolved, options.derived_cache)
        return VisualizedTowers(OnnxVisualizedGraphs(root, threads=options.threads), dim, _empty_prompt(root))

    def load_tokenizer(self, resolved: ResolvedModel) -> Tokenizer:
        return load_tokenizer(resolved.files.root, resolved.spec.text)

    def export_onnx(self, files: ModelFiles, spec: ModelSpec, out: Path, atol: float) -> dict[str, float]:
        from ..bge.onnx_export import export_visualized
        from ..bge.visualized import load_visualized

        refuse_onnx_source(files, ONNX_LAYOUT)
        export_visualized(load_visualized(files.root, self._checkpoint(files)), files.root, out, atol=atol)
        return checked_diffs(out)

    # -- test models -----------------------------------------------------------------------------

    def build_test_model(self, out: Path, options: TinyModelOptions) -> Path:
        """The base-en layout at its real widths; ``tiny``: 2 EVA blocks and 2 text layers, ``base``: 12 and 12."""
        from ..bge.builders import build_visualized

        depth = 2 if options.size == "tiny" else 12
        return build_visualized(out, variant="base-en", eva_depth=depth, text_layers=depth, seed=options.seed,
                                corpus=tuple(options.corpus))


VISUALIZED_BGE = VisualizedBgeFamily()
