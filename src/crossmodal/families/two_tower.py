"""What the transformers two-tower families share: CLIP, SigLIP and Chinese-CLIP.

Their models have the same two layouts (a transformers directory, or two ONNX
graphs beside the tokenizer and processor files), the same towers on each
runtime (``get_image_features`` / ``get_text_features`` in transformers; one
graph per tower in ONNX) and the same export. Each family module
(:mod:`.clip`, :mod:`.siglip`, :mod:`.chinese_clip`) subclasses
:class:`TwoTowerFamily` with what differs: the ``model_type`` it claims, the
dim, the tokenizer rule, the projection, and its tiny test model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelLoadError
from ..models.files import MANIFEST, WEIGHT_FILES, ModelFiles, ResolvedModel, read_json
from ..models.spec import Capabilities, ImagePreprocess, ModelSpec, TextPreprocess
from ..preprocessing.texts import Tokenizer, load_tokenizer
from ..runtimes.base import Encoder, RuntimeOptions
from .base import TinyModelOptions
from .export import check_two_towers, export_two_towers, write_export, write_tokenizer

__all__ = ["ONNX_CANDIDATES", "TINY_TEXT", "TINY_VISION", "TwoTowerFamily", "text_config"]

ONNX_CANDIDATES = {
    "vision": ("onnx/vision_model.onnx", "vision_model.onnx"),
    "text": ("onnx/text_model.onnx", "text_model.onnx"),
}
TINY_VISION = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
               "num_hidden_layers": 2, "num_attention_heads": 2}
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("text_config") or config


def context_length(root: Path, config: dict[str, Any]) -> int:
    """The text tower's position limit, lowered to the tokenizer's ``model_max_length`` where that is smaller."""
    max_pos = int(text_config(config).get("max_position_embeddings", 77))
    context = max_pos
    tok_cfg_path = root / "tokenizer_config.json"
    if tok_cfg_path.is_file():
        limit = read_json(tok_cfg_path).get("model_max_length")
        if isinstance(limit, (int, float)) and 2 <= limit < max_pos:
            context = int(limit)
    return context


class TwoTowerFamily:
    """A transformers two-tower family; subclasses fill in the class attributes and the ``_``-hooks."""

    name: str = ""
    capabilities = Capabilities()
    runtimes: tuple[str, ...] = ("onnx", "torch")
    layouts: tuple[str, ...] = (
        "a transformers model directory (config.json + model.safetensors)",
        "an ONNX one (onnx/vision_model.onnx + onnx/text_model.onnx)",
    )
    #: how each tower's pooled output reaches the shared space, for humans and fingerprints
    projection: str = ""

    # -- what a subclass says --------------------------------------------------------------------

    def _dim(self, config: dict[str, Any]) -> int:
        if "projection_dim" in config:
            return int(config["projection_dim"])
        return int(text_config(config).get("projection_dim", 512))

    def _text(self, context: int) -> TextPreprocess:
        raise NotImplementedError

    def _config(self, options: TinyModelOptions, vocab_size: int) -> Any:
        raise NotImplementedError

    def _model_class(self) -> Any:
        raise NotImplementedError

    def _write_tokenizer(self, out: Path, options: TinyModelOptions) -> int:
        """Write the tokenizer files into ``out``; returns the vocabulary size."""
        raise NotImplementedError

    def _image_processor(self, side: int) -> Any:
        raise NotImplementedError

    # -- layouts and specs -------------------------------------------------------------------------

    def detect(self, root: Path) -> ModelFiles | None:
        graphs = {tower: next((root / c for c in cands if (root / c).is_file()), None)
                  for tower, cands in ONNX_CANDIDATES.items()}
        if graphs["vision"] is not None and graphs["text"] is not None:
            return ModelFiles(root=root, layout="onnx", vision_graph=graphs["vision"], text_graph=graphs["text"])
        if (root / "config.json").is_file() and any((root / w).is_file() for w in WEIGHT_FILES):
            return ModelFiles(root=root, layout="transformers")
        return None

    def claims(self, files: ModelFiles) -> bool:
        if files.layout not in ("transformers", "onnx"):
            return False  # another family's layout; its config may not be a transformers config.json
        model_type = str(read_json(files.root / "config.json").get("model_type", ""))
        return model_type == self.name or model_type.startswith(self.name + "_")

    def read_spec(self, files: ModelFiles, name: str) -> ModelSpec:
        config = read_json(files.root / "config.json")
        try:
            image = ImagePreprocess.from_processor_config(read_json(files.image_root / "preprocessor_config.json"))
            return ModelSpec(
                name=name,
                family=self.name,
                dim=self._dim(config),
                image=image,
                text=self._text(context_length(files.root, config)),
                projection=self.projection,
            )
        except ConfigError as exc:
            raise ModelLoadError(f"{files.root}: {exc}") from exc

    # -- runtimes --------------------------------------------------------------------------------

    def load_encoder(self, resolved: ResolvedModel, runtime: str, options: RuntimeOptions) -> Encoder:
        if runtime == "torch":
            return self._load_torch(resolved, options)
        if runtime == "onnx":
            return self._load_onnx(resolved, options)
        raise ModelLoadError(f"the {self.name} family runs on {', '.join(self.runtimes)}, not {runtime!r}")

    def _load_torch(self, resolved: ResolvedModel, options: RuntimeOptions) -> Encoder:
        from ..runtimes.torch import TorchEncoder, load_reference_model

        if resolved.files.layout != "transformers":
            raise ModelLoadError(
                f"runtime 'torch' needs a transformers-layout model (config.json + model.safetensors); "
                f"{resolved.files.root} is an ONNX export. Use runtime='onnx' for it"
            )
        return TorchEncoder(load_reference_model(resolved.files.root), resolved.spec.dim, options)

    def _load_onnx(self, resolved: ResolvedModel, options: RuntimeOptions) -> Encoder:
        from ..runtimes.onnx import load_graphs

        files = resolved.files
        if files.layout != "onnx":
            files = self._cached_export(resolved, options.derived_cache)
        assert files.vision_graph is not None and files.text_graph is not None
        return load_graphs(files.vision_graph, files.text_graph, resolved.spec.dim, options, weights=resolved.weights,
                           vision_output=files.vision_output, text_output=files.text_output)

    def _cached_export(self, resolved: ResolvedModel, cache_dir: Path) -> ModelFiles:
        """ONNX files for a transformers-layout model: exported once into the cache, then reused."""
        root = cache_dir / "exports" / resolved.weights.replace(":", "-").replace("/", "--")
        if not (root / MANIFEST).is_file():
            write_export(self, resolved.files, root, overwrite=True)
        files = self.detect(root)
        assert files is not None and files.layout == "onnx"
        return files

    def load_tokenizer(self, resolved: ResolvedModel) -> Tokenizer:
        return load_tokenizer(resolved.files.root, resolved.spec.text)

    def export_onnx(self, files: ModelFiles, spec: ModelSpec, out: Path, atol: float) -> dict[str, float]:
        from ..runtimes.torch import load_reference_model, quiet_transformers

        model = load_reference_model(files.root)
        with quiet_transformers():
            export_two_towers(model, spec, out)
        write_tokenizer(files.root, out)
        return check_two_towers(files, out, model, spec, atol)

    # -- test models -----------------------------------------------------------------------------

    def build_test_model(self, out: Path, options: TinyModelOptions) -> Path:
        import torch

        from ..runtimes.torch import quiet_transformers

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        vocab_size = self._write_tokenizer(out, options)
        model = options.model
        with quiet_transformers():
            if model is None:
                config = self._config(options, vocab_size)
                torch.manual_seed(options.seed)
                model = self._model_class()(config).eval()
            model.save_pretrained(str(out), safe_serialization=True)
        self._image_processor(model.config.vision_config.image_size).save_pretrained(str(out))
        return out
