"""BGE-M3's relevance scores on crossmodal's outputs: :func:`compute_score`.

>>> q = model.embed_text_outputs(["what is BGE M3?"], outputs=("sparse", "multivector"))
>>> p = model.embed_text_outputs(["BGE M3 is an embedding model ..."], outputs=("sparse", "multivector"))
>>> compute_score(q, p, weights=(0.4, 0.2, 0.4))["colbert+sparse+dense"]

For each pair (``queries[i]``, ``passages[i]``), as ``BGEM3FlagModel.compute_score``
defines them:

* ``dense``: the dot product of the two dense rows (their cosine: the rows are unit);
* ``sparse``: the lexical match, the sum over the token ids both texts hold of
  the product of their weights;
* ``colbert``: MaxSim, each query token vector's best dot product with a passage
  token vector, averaged over the query's token vectors;
* ``sparse+dense``: ``(w0 * dense + w1 * sparse) / (w0 + w1)``;
* ``colbert+sparse+dense``: ``(w0 * dense + w1 * sparse + w2 * colbert) / (w0 + w1 + w2)``;

with ``weights = (w0, w1, w2)`` for (dense, sparse, colbert), ``(1, 1, 1)`` by
default as in the reference. One difference, where the reference is not
exact: scoring a batch, it pads the passages' token vectors with zero vectors,
so a query token whose every similarity to a shorter passage is negative
scores 0 instead of its best similarity; crossmodal scores each pair alone,
as the reference does for a batch of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .bge.m3_outputs import M3Output, score_pairs
from .errors import ConfigError

if TYPE_CHECKING:
    from .embedder import TextEmbeddings

__all__ = ["SCORES", "compute_score"]

#: the scores :func:`compute_score` returns, by name
SCORES = ("dense", "sparse", "colbert", "sparse+dense", "colbert+sparse+dense")


def _outputs(side: TextEmbeddings, name: str) -> M3Output:
    if side.sparse is None or side.multivector is None:
        raise ConfigError(f"compute_score needs the dense, sparse and multi-vector outputs of the {name}; embed them "
                          "with model.embed_text_outputs(texts, outputs=('sparse', 'multivector'))")
    dense = np.asarray(side.dense, dtype=np.float32)
    if dense.ndim != 2 or not len(dense) == len(side.sparse) == len(side.multivector):
        raise ConfigError(f"the {name}' outputs disagree: {len(dense)} dense rows, {len(side.sparse)} sparse "
                          f"vectors, {len(side.multivector)} multi-vectors")
    multi = [np.asarray(m, dtype=np.float32) for m in side.multivector]
    return M3Output(dense=dense, sparse=list(side.sparse), colbert=multi)


def compute_score(queries: TextEmbeddings, passages: TextEmbeddings,
                  weights: Sequence[float] = (1.0, 1.0, 1.0)) -> dict[str, np.ndarray]:
    """The scores of the pairs (``queries[i]``, ``passages[i]``) by name (:data:`SCORES`), each float32 (n,).

    Both sides come from :meth:`~crossmodal.Model.embed_text_outputs` with
    ``outputs=("sparse", "multivector")``; ``weights`` are (dense, sparse,
    colbert), see the module docstring.
    """
    q, p = _outputs(queries, "queries"), _outputs(passages, "passages")
    assert q.dense is not None and p.dense is not None
    if len(q.dense) != len(p.dense):
        raise ConfigError(f"compute_score scores pairs: {len(q.dense)} queries but {len(p.dense)} passages")
    if q.dense.shape[1] != p.dense.shape[1]:
        raise ConfigError(f"the queries' dense rows have {q.dense.shape[1]} dimensions, the passages' "
                          f"{p.dense.shape[1]}: they come from different models")
    try:
        w = tuple(float(x) for x in weights)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"weights must be three numbers (dense, sparse, colbert), got {weights!r}") from exc
    scores = score_pairs(q, p, w)  # type: ignore[arg-type]  # its length is checked there
    return {name: scores[name] for name in SCORES}
