"""A test model family with every capability a family can have: a fused pair graph, sparse and multi-vector texts.

For testing the surfaces built on those capabilities (the CLI's and the
server's extra outputs, the pair rule of collections, scoring) with any
family that has them, without a real network. It reaches crossmodal only
through a :class:`~crossmodal.families.registry.FamilyRegistry`
(:func:`outputs_registry`), as any family does:

>>> registry = outputs_registry()
>>> path = build_outputs_model(tmp / "m", seed=1)
>>> model = crossmodal.load_model(path, families=registry)

Its encoder is :class:`~crossmodal.testing.fake.FakeEncoder`'s arithmetic, plus,
worked out by hand in tests:

* a **pair** (fusion ``graph``): ``image_row * 0.5 - text_row`` (raw rows, before
  normalizing), which no weighted sum of the two normalized rows gives;
* **sparse**: per text, each distinct word's id (the tokenizer's ids; the
  start/end and padding ids dropped) with the number of times it occurs, in
  ascending id order;
* **multi-vector**: per text, one unit vector of :data:`MULTIVECTOR_DIM` values
  per word token, in order (:func:`token_vector`).

A model directory holds ``outputs-model.json`` (family, dim, fusion) and
``weights.bin`` (the seed: the weights' identity, so two directories with the
same seed and different fusion rules share a space fingerprint).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from pathlib import Path

import numpy as np

from ..errors import ExportError, ModelLoadError
from ..families import FAMILIES, FamilyRegistry, TinyModelOptions
from ..models.files import ModelFiles, ResolvedModel, read_json
from ..models.spec import Capabilities, Fusion, ModelSpec
from ..preprocessing.texts import Tokenizer
from ..runtimes.base import Encoder, RuntimeOptions, SparseVector, TextOutputs
from .fake import FakeEncoder, FakeTokenizer, fake_spec

__all__ = [
    "MULTIVECTOR_DIM",
    "OUTPUTS_DENSE_ONLY",
    "OUTPUTS_FAMILY",
    "OutputsEncoder",
    "OutputsFamily",
    "build_outputs_model",
    "outputs_registry",
    "token_vector",
]

CONFIG = "outputs-model.json"
WEIGHTS = "weights.bin"
#: width of each token vector of the multi-vector output
MULTIVECTOR_DIM = 8


def token_vector(token: int) -> np.ndarray:
    """The unit float32 vector of one token id in the multi-vector output."""
    seed = int.from_bytes(hashlib.sha256(f"mv{token}".encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(MULTIVECTOR_DIM).astype(np.float32)
    return v / np.linalg.norm(v)


class OutputsEncoder(FakeEncoder):
    """FakeEncoder's towers, plus a fused pair graph and sparse and multi-vector text outputs."""

    def encode_pairs(self, pixel_values: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
        self.calls.append(("pair", len(pixel_values)))
        return (self.encode_images(pixel_values) * np.float32(0.5) - self.encode_texts(inputs)).astype(np.float32)

    def encode_text_outputs(self, inputs: dict[str, np.ndarray], outputs: Collection[str]) -> TextOutputs:
        sparse, multi = [], []
        for row in inputs["input_ids"]:
            words = row[row > 1]  # 0 pads, 1 starts and ends a text
            ids, counts = np.unique(words, return_counts=True)
            sparse.append(SparseVector(ids.astype(np.int64), counts.astype(np.float32)))
            multi.append(np.stack([token_vector(int(t)) for t in words]).astype(np.float32))
        return TextOutputs(dense=self.encode_texts(inputs), sparse=sparse if "sparse" in outputs else None,
                           multivector=multi if "multivector" in outputs else None)


class OutputsFamily:
    """The family: directories with ``outputs-model.json`` naming it (see the module docstring)."""

    runtimes: tuple[str, ...] = ("onnx",)
    layouts: tuple[str, ...] = (f"a test model directory ({CONFIG} and {WEIGHTS})",)

    def __init__(self, name: str, capabilities: Capabilities) -> None:
        self.name = name
        self.capabilities = capabilities

    def detect(self, root: Path) -> ModelFiles | None:
        if not (root / CONFIG).is_file():
            return None
        return ModelFiles(root=root, layout="test-outputs", parts=(("weights", root / WEIGHTS),))

    def claims(self, files: ModelFiles) -> bool:
        return files.layout == "test-outputs" and read_json(files.root / CONFIG).get("family") == self.name

    def read_spec(self, files: ModelFiles, name: str) -> ModelSpec:
        cfg = read_json(files.root / CONFIG)
        fusion = Fusion(kind=cfg.get("fusion", "graph"), image_weight=float(cfg.get("image_weight", 0.5)))
        return fake_spec(int(cfg["dim"]), name).with_(family=self.name, fusion=fusion, projection="test-outputs")

    def load_encoder(self, resolved: ResolvedModel, runtime: str, options: RuntimeOptions) -> Encoder:
        path = resolved.files.part("weights")
        try:
            seed = int(path.read_text(encoding="ascii")) if path is not None else 0
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read the test model's {WEIGHTS}: {exc}") from exc
        return OutputsEncoder(resolved.spec.dim, seed=seed)

    def load_tokenizer(self, resolved: ResolvedModel) -> Tokenizer:
        return FakeTokenizer(resolved.spec.text)

    def export_onnx(self, files: ModelFiles, spec: ModelSpec, out: Path, atol: float) -> dict[str, float]:
        raise ExportError("the test outputs family has no ONNX export")

    def build_test_model(self, out: Path, options: TinyModelOptions) -> Path:
        return build_outputs_model(out, seed=options.seed, dim=options.projection_dim or 16, family=self.name)


#: every input and every output; pairs through its own graph
OUTPUTS_FAMILY = OutputsFamily("test-outputs", Capabilities(outputs=("dense", "sparse", "multivector")))
#: the same arithmetic with the dense output alone
OUTPUTS_DENSE_ONLY = OutputsFamily("test-dense", Capabilities())


def outputs_registry(base: FamilyRegistry = FAMILIES) -> FamilyRegistry:
    """``base`` with :data:`OUTPUTS_FAMILY` and :data:`OUTPUTS_DENSE_ONLY` registered."""
    return base.with_family(OUTPUTS_FAMILY).with_family(OUTPUTS_DENSE_ONLY)


def build_outputs_model(out: Path, *, seed: int = 0, dim: int = 16, fusion: str = "graph", image_weight: float = 0.5,
                        family: str = OUTPUTS_FAMILY.name) -> Path:
    """Write a model directory of the family ``family`` (``test-outputs`` or ``test-dense``).

    ``fusion``: ``graph`` (pairs through the encoder's own graph) or
    ``weighted-sum`` (the CLIP composition, with ``image_weight``).
    """
    Fusion(kind=fusion, image_weight=image_weight)  # type: ignore[arg-type]  # checks both
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"family": family, "dim": dim, "fusion": fusion, "image_weight": image_weight}
    (out / CONFIG).write_text(json.dumps(cfg), encoding="utf-8")
    (out / WEIGHTS).write_text(str(seed), encoding="ascii")
    return out
