"""ModelSpec: everything that decides a model's vectors, as frozen data.

A spec describes both towers of one training run (never two unrelated names),
the embedding dim, the image and text preprocessing, how the towers' outputs
are projected and fused, and which files each runtime needs. Preprocessing,
tokenization, dim and normalization are all derived from it, so the config
travels with the model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from ..errors import ConfigError

__all__ = [
    "Capabilities",
    "Fusion",
    "ImagePreprocess",
    "ModelSpec",
    "Source",
    "TextPreprocess",
    "TowerFiles",
]

#: a model family's name (``clip``, ``siglip``, ...), checked against the family registry when a model loads
Family = str
Modality = Literal["text", "image", "pair"]
Output = Literal["dense", "sparse", "multivector"]
MODALITIES: tuple[str, ...] = ("text", "image", "pair")
OUTPUTS: tuple[str, ...] = ("dense", "sparse", "multivector")
ResizeMode = Literal["shortest", "squash"]
Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]
Padding = Literal["longest", "max_length"]
CropRounding = Literal["floor", "half_even"]
RgbStage = Literal["before_resize", "after_resize"]

#: PIL resampling ids, as written in preprocessor_config.json ("resample": 3).
PIL_RESAMPLE: dict[int, Interpolation] = {
    0: "nearest",
    1: "lanczos",
    2: "bilinear",
    3: "bicubic",
    4: "box",
    5: "hamming",
}


@dataclass(frozen=True)
class ImagePreprocess:
    """How one model turns decoded RGB pixels into its input tensor.

    ``resize="shortest"`` scales the shortest side to ``size[0]`` (aspect kept,
    the long side floored like torchvision) and then center-crops to ``crop``;
    ``resize="squash"`` resizes straight to ``size`` = (height, width).

    Two choices where reference pipelines differ:

    * ``crop_rounding``: the crop's offset is ``(d - c) // 2`` (``"floor"``, the
      Hugging Face processors) or ``round((d - c) / 2)`` with Python's round half
      to even (``"half_even"``, torchvision's ``CenterCrop``); they differ by one
      pixel when ``d - c`` is 3 mod 4;
    * ``rgb``: when the decoded image becomes RGB. ``"before_resize"`` (the Hugging
      Face processors): transparency is composited on white, then the RGB image is
      resized. ``"after_resize"`` (torchvision transforms that end in
      ``convert('RGB')``): Pillow resizes the image in its own mode (palette and
      1-bit images always with NEAREST, RGBA premultiplied), and alpha is then
      dropped, so fully transparent pixels come out black.
    """

    resize: ResizeMode
    size: tuple[int, int]
    crop: tuple[int, int] | None
    interpolation: Interpolation = "bicubic"
    rescale: float | None = 1 / 255
    mean: tuple[float, float, float] | None = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] | None = (0.26862954, 0.26130258, 0.27577711)
    crop_rounding: CropRounding = "floor"
    rgb: RgbStage = "before_resize"

    def __post_init__(self) -> None:
        if self.resize not in ("shortest", "squash"):
            raise ConfigError(f"resize must be 'shortest' or 'squash', got {self.resize!r}")
        if self.interpolation not in PIL_RESAMPLE.values():
            raise ConfigError(f"unknown interpolation {self.interpolation!r}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ConfigError(f"size must be (height, width) of positive ints, got {self.size!r}")
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 1):
            raise ConfigError(f"crop must be (height, width) of positive ints, got {self.crop!r}")
        if (self.mean is None) != (self.std is None):
            raise ConfigError("mean and std must both be set or both be None")
        if self.crop_rounding not in ("floor", "half_even"):
            raise ConfigError(f"crop_rounding must be 'floor' or 'half_even', got {self.crop_rounding!r}")
        if self.rgb not in ("before_resize", "after_resize"):
            raise ConfigError(f"rgb must be 'before_resize' or 'after_resize', got {self.rgb!r}")

    def digest_fields(self) -> dict[str, Any]:
        """The fields as a dict, leaving out the later-added ones at their defaults.

        So that the spaces (and stored collections) of models that do not use
        them keep their fingerprints.
        """
        fields = asdict(self)
        for name, default in (("crop_rounding", "floor"), ("rgb", "before_resize")):
            if fields[name] == default:
                del fields[name]
        return fields

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the tensor the vision tower receives."""
        if self.crop is not None:
            return self.crop
        if self.resize == "shortest":
            raise ConfigError("a shortest-side resize needs a crop to give a fixed input size")
        return self.size

    @classmethod
    def from_processor_config(cls, cfg: dict[str, Any]) -> ImagePreprocess:
        """Read a Hugging Face ``preprocessor_config.json`` the way its PIL processor does."""
        size = cfg.get("size", 224)
        crop_cfg = cfg.get("crop_size")
        do_crop = bool(cfg.get("do_center_crop", crop_cfg is not None))
        if isinstance(size, int):
            # Old configs: an int means shortest edge unless the processor squares it.
            size = {"shortest_edge": size}
        if "shortest_edge" in size:
            resize: ResizeMode = "shortest"
            edge = int(size["shortest_edge"])
            hw = (edge, edge)
        elif "height" in size and "width" in size:
            resize = "squash"
            hw = (int(size["height"]), int(size["width"]))
        else:
            raise ConfigError(f"unsupported size in preprocessor config: {size!r}")
        crop: tuple[int, int] | None = None
        if do_crop:
            if isinstance(crop_cfg, int):
                crop = (crop_cfg, crop_cfg)
            elif isinstance(crop_cfg, dict):
                crop = (int(crop_cfg["height"]), int(crop_cfg["width"]))
            else:
                crop = hw
        if resize == "shortest" and crop is None:
            raise ConfigError("preprocessor config resizes the shortest edge but does not crop; input size is not fixed")
        if cfg.get("do_resize", True) is False:
            raise ConfigError("preprocessor configs with do_resize=false are not supported")
        resample = cfg.get("resample", 3)
        if isinstance(resample, str):
            interpolation = resample.lower()
        else:
            interpolation = PIL_RESAMPLE.get(int(resample), "bicubic")
        do_rescale = cfg.get("do_rescale", True)
        do_normalize = cfg.get("do_normalize", True)
        mean = tuple(float(x) for x in cfg.get("image_mean", (0.48145466, 0.4578275, 0.40821073)))
        std = tuple(float(x) for x in cfg.get("image_std", (0.26862954, 0.26130258, 0.27577711)))
        return cls(
            resize=resize,
            size=hw,
            crop=crop,
            interpolation=interpolation,  # type: ignore[arg-type]
            rescale=float(cfg.get("rescale_factor", 1 / 255)) if do_rescale else None,
            mean=mean if do_normalize else None,  # type: ignore[arg-type]
            std=std if do_normalize else None,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class TextPreprocess:
    """Tokenizer kind, context length and padding rule of the text tower.

    CLIP pads to the longest text in a batch: its causal attention makes the
    pooled token independent of later padding. SigLIP pads to ``max_length``
    because it was trained that way and pools the last position.
    """

    tokenizer: Literal["clip-bpe", "wordpiece", "sentencepiece"]
    context_length: int
    padding: Padding = "longest"
    #: input names the text tower takes, in order (``attention_mask`` only where the model uses it)
    inputs: tuple[str, ...] = ("input_ids", "attention_mask")
    #: the most tokens the text of an image+text pair can have, where the family's fused graph puts the image's
    #: tokens before it in the same sequence (Visualized-BGE); None: a pair's text takes ``context_length``
    pair_context_length: int | None = None

    def __post_init__(self) -> None:
        if self.context_length < 2:
            raise ConfigError(f"context_length must be >= 2, got {self.context_length}")
        if self.padding not in ("longest", "max_length"):
            raise ConfigError(f"padding must be 'longest' or 'max_length', got {self.padding!r}")
        if self.pair_context_length is not None and not 2 <= self.pair_context_length <= self.context_length:
            raise ConfigError(f"pair_context_length must be between 2 and context_length ({self.context_length}), "
                              f"got {self.pair_context_length}")

    def digest_fields(self) -> dict[str, Any]:
        """The fields as a dict, leaving out ``pair_context_length`` when unset (older spaces keep their digest)."""
        fields = asdict(self)
        if fields["pair_context_length"] is None:
            del fields["pair_context_length"]
        return fields


@dataclass(frozen=True)
class Fusion:
    """How an image+text pair becomes one vector.

    ``weighted-sum``: normalize(w * normalize(image) + (1 - w) * normalize(text)),
    the composition that works for any CLIP-family space. ``graph``: the
    family's own fused encoder takes the image and the text at once
    (:meth:`crossmodal.runtimes.base.PairEncoder.encode_pairs`) and
    ``image_weight`` does not apply.
    """

    kind: Literal["weighted-sum", "graph"] = "weighted-sum"
    image_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in ("weighted-sum", "graph"):
            raise ConfigError(f"unknown fusion kind {self.kind!r}")
        if not 0.0 <= self.image_weight <= 1.0:
            raise ConfigError(f"image_weight must be in [0, 1], got {self.image_weight}")


@dataclass(frozen=True)
class Capabilities:
    """What a model family takes and gives.

    ``inputs``: the modalities ``embed_*`` accepts (a text-only family has no
    image tower). ``outputs``: ``dense`` (one vector per input, always),
    ``sparse`` (token id -> weight per text) and ``multivector`` (one vector
    per token of a text) beside it.
    """

    inputs: tuple[Modality, ...] = ("text", "image", "pair")
    outputs: tuple[Output, ...] = ("dense",)

    def __post_init__(self) -> None:
        if not self.inputs or any(m not in MODALITIES for m in self.inputs):
            raise ConfigError(f"inputs must be some of {', '.join(MODALITIES)}, got {self.inputs!r}")
        if "dense" not in self.outputs or any(o not in OUTPUTS for o in self.outputs):
            raise ConfigError(f"outputs must include 'dense' and be some of {', '.join(OUTPUTS)}, got {self.outputs!r}")

    def accepts(self, modality: str) -> bool:
        return modality in self.inputs

    def gives(self, output: str) -> bool:
        return output in self.outputs


@dataclass(frozen=True)
class TowerFiles:
    """Where one tower's ONNX graph lives: a hub repo (or None for the main one) and a file in it."""

    file: str
    repo: str | None = None
    output: str | None = None  # graph output to read; None picks the projected embeddings by name


@dataclass(frozen=True)
class Source:
    """Where a runtime gets its files.

    ``layout="transformers"``: config.json, weights, tokenizer and
    preprocessor_config.json in one repo. ``layout="onnx"``: a vision and a text
    graph, possibly in two repos, next to tokenizer.json and
    preprocessor_config.json.
    """

    repo: str
    layout: Literal["transformers", "onnx"]
    revision: str | None = None
    vision: TowerFiles | None = None
    text: TowerFiles | None = None

    def __post_init__(self) -> None:
        if self.layout == "onnx" and (self.vision is None or self.text is None):
            raise ConfigError(f"onnx source {self.repo!r} must name both tower graphs")

    def repos(self) -> tuple[str, ...]:
        names = [self.repo]
        for tower in (self.vision, self.text):
            if tower is not None and tower.repo and tower.repo not in names:
                names.append(tower.repo)
        return tuple(names)


@dataclass(frozen=True)
class ModelSpec:
    """One model of a registered family: its towers, one space."""

    name: str
    family: Family
    dim: int
    image: ImagePreprocess | None  # None: the family has no image tower (it embeds texts only)
    text: TextPreprocess
    #: how each tower's pooled output reaches the shared space, for humans and fingerprints
    projection: str = "linear"
    fusion: Fusion = field(default_factory=Fusion)
    #: files per runtime ("onnx", "torch"); a local directory has one source
    sources: tuple[tuple[str, Source], ...] = ()
    description: str = ""
    license: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.family, str) or not self.family:
            raise ConfigError(f"a model family must be a non-empty name, got {self.family!r}")
        if self.dim < 1:
            raise ConfigError(f"dim must be positive, got {self.dim}")

    def source(self, runtime: str) -> Source | None:
        for name, src in self.sources:
            if name == runtime:
                return src
        return None

    def with_(self, **changes: Any) -> ModelSpec:
        return replace(self, **changes)

    def preprocessing_digest(self) -> str:
        """A digest of everything outside the weights that changes a vector."""
        payload = {
            "family": self.family,
            "dim": self.dim,
            "image": self.image.digest_fields() if self.image is not None else None,
            "text": self.text.digest_fields(),
            "projection": self.projection,
        }
        blob = json.dumps(payload, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description, for ``crossmodal models info``."""
        out = {
            "name": self.name,
            "family": self.family,
            "dim": self.dim,
            "projection": self.projection,
            "image": asdict(self.image) if self.image is not None else None,
            "text": asdict(self.text),
            "fusion": asdict(self.fusion),
            "sources": {name: asdict(src) for name, src in self.sources},
            "description": self.description,
            "license": self.license,
        }
        return out
