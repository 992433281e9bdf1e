"""The seam between crossmodal and a model family: one small protocol.

A family is one module that owns everything particular to an architecture:

* which directory layouts it recognizes (:meth:`Family.detect`) and whether a
  model's config is one of its own (:meth:`Family.claims`);
* how a :class:`~crossmodal.models.spec.ModelSpec` is read from its config
  files (:meth:`Family.read_spec`): dim, image preprocessing, tokenizer rules,
  fusion;
* its towers' graphs on each runtime it supports (:meth:`Family.load_encoder`)
  and their ONNX export (:meth:`Family.export_onnx`);
* its tokenizer (:meth:`Family.load_tokenizer`);
* what it takes and gives (:attr:`Family.capabilities`: texts, images, pairs;
  dense, sparse, multi-vector outputs);
* its tiny seeded test model (:meth:`Family.build_test_model`).

Families are registered in a :class:`~crossmodal.families.registry.FamilyRegistry`
(data, passed to :func:`crossmodal.load_model`), never in hidden global state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from ..models.files import ModelFiles, ResolvedModel
from ..models.spec import Capabilities, ModelSpec
from ..preprocessing.texts import Tokenizer
from ..runtimes.base import Encoder, RuntimeOptions

__all__ = ["ExportReport", "Family", "TinyModelOptions"]

SIZES = ("tiny", "base")


@dataclass(frozen=True)
class TinyModelOptions:
    """How :meth:`Family.build_test_model` builds a seeded model.

    ``size="tiny"``: a few layers of width 32 on 32x32 inputs (unit tests);
    ``size="base"``: the family's reference architecture at full size.
    ``model``: an already built (e.g. trained) model object to write instead of
    a random one. ``projection_dim``: the embedding dim, where the family has
    a projection to choose. ``vocab``: where the family's tokenizer is a fixed
    vocabulary file that cannot be generated (CLIP's BPE merges), how to get
    its bytes. ``corpus``: texts a family may train its vocabulary on.
    """

    size: str = "tiny"
    seed: int = 0
    model: Any = None
    projection_dim: int | None = None
    vocab: Callable[[], bytes] | None = None
    corpus: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}")


@dataclass(frozen=True)
class ExportReport:
    """A checked ONNX export: where it went, and how far each graph is from its source (after normalizing)."""

    out_dir: Path
    weights: str
    #: output name ("image", "text", "pair", ...) -> largest absolute difference from the source
    diffs: Mapping[str, float] = field(default_factory=dict)

    @property
    def max_abs_diff_image(self) -> float:
        return float(self.diffs.get("image", float("nan")))

    @property
    def max_abs_diff_text(self) -> float:
        return float(self.diffs.get("text", float("nan")))


class Family(Protocol):
    """One model family. Implementations are plain objects; nothing needs to inherit from this."""

    #: the name specs carry (``ModelSpec.family``) and ``config.json`` files are matched against
    name: str
    #: what ``embed_*`` accepts and which outputs the encoder gives
    capabilities: Capabilities
    #: the runtimes this family loads on, in order of preference ("onnx", "torch")
    runtimes: tuple[str, ...]
    #: one phrase per directory layout it reads, for the error that names what a directory lacks
    layouts: tuple[str, ...]

    def detect(self, root: Path) -> ModelFiles | None:
        """The files of ``root`` if it is in one of this family's layouts (whatever its config says), else None."""
        ...

    def claims(self, files: ModelFiles) -> bool:
        """Whether the config files of ``files`` describe a model of this family."""
        ...

    def read_spec(self, files: ModelFiles, name: str) -> ModelSpec:
        """The spec the config files of ``files`` describe (``claims(files)`` is true)."""
        ...

    def load_encoder(self, resolved: ResolvedModel, runtime: str, options: RuntimeOptions) -> Encoder:
        """The towers of ``resolved`` on ``runtime`` (one of :attr:`runtimes`).

        The encoder gives raw rows; normalizing, batching and skipping happen
        above it. A family whose :attr:`capabilities` take pairs with
        ``spec.fusion.kind == "graph"`` returns a
        :class:`~crossmodal.runtimes.base.PairEncoder`; one that gives sparse
        or multi-vector outputs returns a
        :class:`~crossmodal.runtimes.base.TextOutputsEncoder`.
        """
        ...

    def load_tokenizer(self, resolved: ResolvedModel) -> Tokenizer:
        """The tokenizer ``resolved``'s text tower was trained with, following ``resolved.spec.text``."""
        ...

    def export_onnx(self, files: ModelFiles, spec: ModelSpec, out: Path, atol: float) -> dict[str, float]:
        """Write the ONNX layout of ``files`` into the empty directory ``out`` and check it against the source.

        Returns the largest difference per output; raises
        :class:`~crossmodal.errors.ExportError` when one is over ``atol``. The
        caller writes ``crossmodal.json`` and moves ``out`` into place.
        """
        ...

    def build_test_model(self, out: Path, options: TinyModelOptions) -> Path:
        """Write a seeded model of this family into ``out``, in a layout :meth:`detect` recognizes."""
        ...
