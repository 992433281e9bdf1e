"""The seam between crossmodal and an inference engine.

A model family (:mod:`crossmodal.families`) loads its towers on a runtime into
an :class:`Encoder`: two methods, preprocessed arrays in, raw (unnormalized)
tower outputs out. Everything else (decoding, tokenizing, batching,
normalizing, fusing) lives above it and is shared by every runtime, which is
why the same input gives the same vector on ONNX and on PyTorch.

Two optional widenings of the seam, for families that need them:

* :class:`PairEncoder`: the family's own fused graph takes an image and a text
  at once (its spec's fusion kind is ``graph``);
* :class:`TextOutputsEncoder`: texts give sparse lexical weights and/or one
  vector per token beside the dense row (:class:`TextOutputs`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ..errors import ConfigError

__all__ = ["Encoder", "PairEncoder", "RuntimeOptions", "SparseVector", "TextOutputs", "TextOutputsEncoder"]

Mode = Literal["exact", "fast"]
MODES = ("exact", "fast")


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run a model. ``None`` means: the runtime's documented default."""

    mode: Mode = "exact"
    threads: int | None = None  # intra-op threads; None = all physical cores
    device: str | None = None  # "cpu", "cuda", "cuda:1"; None = cpu
    cache_dir: Path | None = None  # where derived artifacts (int8 graphs, exports) are cached; None: see derived_cache
    #: the outputs to load ("dense", "sparse", "multivector"); None: every output the family gives. A family may
    #: then do without the files only the other outputs need (BGE-M3's head files, for ("dense",))
    outputs: tuple[str, ...] | None = None

    @property
    def derived_cache(self) -> Path:
        """``cache_dir``, or ``~/.cache/crossmodal`` (the CLI and the server pass the one their settings name)."""
        return self.cache_dir if self.cache_dir is not None else Path.home() / ".cache" / "crossmodal"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be 'exact' or 'fast', got {self.mode!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.outputs is not None:
            if isinstance(self.outputs, str) or "dense" not in self.outputs or \
                    any(o not in ("dense", "sparse", "multivector") for o in self.outputs):
                raise ConfigError("outputs must include 'dense' and be some of dense, sparse, multivector, "
                                  f"got {self.outputs!r}")
            object.__setattr__(self, "outputs", tuple(self.outputs))

    def wants(self, output: str) -> bool:
        """Whether ``output`` is to be loaded (every output is, unless ``outputs`` names a subset)."""
        return self.outputs is None or output in self.outputs


class Encoder(Protocol):
    """Both towers of one model on one engine."""

    #: width of each output row
    dim: int

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        """float32 (n, 3, H, W) -> float32 (n, dim) raw image features."""
        ...

    def encode_texts(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """int64 token arrays (n, L) by input name -> float32 (n, dim) raw text features."""
        ...


class PairEncoder(Encoder, Protocol):
    """An encoder whose family fuses an image and a text in its own graph."""

    def encode_pairs(self, pixel_values: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """float32 (n, 3, H, W) and token arrays (n, L) of the same n pairs -> float32 (n, dim) raw pair rows."""
        ...


#: pgvector's limits on a ``sparsevec``: non-zero entries, and dimensions
SPARSEVEC_MAX_NNZ = 16_000
SPARSEVEC_MAX_DIM = 1_000_000_000


@dataclass(frozen=True)
class SparseVector:
    """Lexical weights of one text: token ids (int64, ascending) and their weights (float32, > 0).

    :meth:`to_qdrant` and :meth:`to_sparsevec` give it in the forms Qdrant's
    sparse vectors and pgvector's ``sparsevec`` take.
    """

    indices: np.ndarray
    values: np.ndarray

    def as_dict(self) -> dict[int, float]:
        return dict(zip(self.indices.tolist(), self.values.tolist()))

    def as_lexical_weights(self) -> dict[str, float]:
        """FlagEmbedding's form: ``{str(token_id): weight}``."""
        return {str(i): v for i, v in zip(self.indices.tolist(), self.values.tolist())}

    def to_qdrant(self) -> dict[str, list[Any]]:
        """``{"indices": [...], "values": [...]}``: ``qdrant_client.models.SparseVector(**it)``, or the JSON
        of Qdrant's REST API (token ids are Qdrant's indices as they are)."""
        return {"indices": self.indices.tolist(), "values": self.values.tolist()}

    def to_sparsevec(self, dim: int) -> str:
        """pgvector's ``sparsevec`` text form, ``'{i:v,...}/dim'``: its indices count from 1, so token id
        ``t`` is written ``t + 1``. ``dim`` is the model's vocabulary size (the column's dimension)."""
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= SPARSEVEC_MAX_DIM:
            raise ConfigError(f"a sparsevec's dimension must be an int from 1 to {SPARSEVEC_MAX_DIM:,}, got {dim!r}")
        if len(self.indices) > SPARSEVEC_MAX_NNZ:
            raise ConfigError(f"this sparse vector has {len(self.indices):,} entries; pgvector's sparsevec holds at "
                              f"most {SPARSEVEC_MAX_NNZ:,}")
        if len(self.indices) and (int(self.indices.min()) < 0 or int(self.indices.max()) >= dim):
            bad = int(self.indices.max()) if int(self.indices.min()) >= 0 else int(self.indices.min())
            raise ConfigError(f"token id {bad} does not fit a sparsevec of dimension {dim} (ids run from 0 to "
                              f"{dim - 1}); pass the model's vocabulary size")
        # str(float32) is the shortest text that reads back as the same float32 (pgvector stores float32)
        values = np.asarray(self.values, dtype=np.float32)
        body = ",".join(f"{i + 1}:{str(v)}" for i, v in zip(self.indices.tolist(), values))
        return "{" + body + "}/" + str(int(dim))


@dataclass(frozen=True)
class TextOutputs:
    """What a text tower gives beyond one dense row: each list holds one entry per input text, in order.

    ``dense``: float32 (n, dim) raw rows. ``sparse``: a :class:`SparseVector`
    per text. ``multivector``: a float32 (n_tokens, multivector_dim) array per
    text. Outputs not asked for are ``None``.
    """

    dense: np.ndarray
    sparse: list[SparseVector] | None = None
    multivector: list[np.ndarray] | None = None


class TextOutputsEncoder(Encoder, Protocol):
    """An encoder whose texts also give sparse and/or multi-vector outputs."""

    def encode_text_outputs(self, inputs: dict[str, np.ndarray], outputs: Collection[str]) -> TextOutputs:
        """Token arrays (n, L) -> the ``outputs`` asked for (``dense`` always, ``sparse``, ``multivector``)."""
        ...
