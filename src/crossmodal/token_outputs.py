"""Models whose texts also give sparse and multi-vector outputs (BGE-M3), as the retrieval layer sees them.

:mod:`crossmodal.retrieval.tokens` recognizes a model with a sparse output by
its ``embed_sparse`` method, and one with a multi-vector output by
``embed_multivectors``: a collection then stores each text's sparse vector and
multi-vector beside its dense one, and ``search(using="sparse" | "hybrid",
rerank="multivector")`` uses them. So a :class:`~crossmodal.embedder.Model`
has those methods exactly when its capabilities give those outputs:
:func:`model_class` picks the class :func:`crossmodal.load_model` builds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .embedder import Model
from .models.spec import Capabilities

__all__ = ["MultivectorModel", "SparseModel", "TokenOutputsModel", "model_class"]


class SparseModel(Model):
    """A model whose texts also give sparse lexical weights."""

    def embed_sparse(self, texts: Sequence[str]) -> list[dict[int, float]]:
        """One ``{token id: weight}`` per text (weights > 0): ``embed_texts(texts, output="sparse")`` as dicts."""
        return [vector.as_dict() for vector in self.embed_texts(texts, output="sparse")]


class MultivectorModel(Model):
    """A model whose texts also give one vector per token."""

    def embed_multivectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One float32 (tokens, dim) array of unit rows per text: ``embed_texts(texts, output="multivector")``."""
        return list(self.embed_texts(texts, output="multivector"))


class TokenOutputsModel(SparseModel, MultivectorModel):
    """A model with both (BGE-M3)."""

    def embed_token_outputs(self, texts: Sequence[str]) -> tuple[list[dict[int, float]], list[np.ndarray]]:
        """(sparse, multi-vectors) of ``texts`` from one pass of the model."""
        out = self.embed_text_outputs(texts, outputs=("sparse", "multivector"))
        assert out.sparse is not None and out.multivector is not None
        return [vector.as_dict() for vector in out.sparse], list(out.multivector)


def model_class(capabilities: Capabilities) -> type[Model]:
    """The :class:`Model` class whose methods match the outputs ``capabilities`` give."""
    classes: dict[tuple[bool, bool], type[Model]] = {
        (False, False): Model, (True, False): SparseModel, (False, True): MultivectorModel,
        (True, True): TokenOutputsModel,
    }
    return classes[capabilities.gives("sparse"), capabilities.gives("multivector")]
