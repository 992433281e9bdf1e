"""``crossmodal embed --output sparse|multivector``: a text's sparse weights or token vectors, as JSON or arrays.

These outputs are per text (a model that gives them, such as BGE-M3, gives
them for texts only). Their layouts:

* JSON: each item of ``data`` holds ``"sparse": {"indices": [...], "values": [...]}``
  (token ids ascending, float32 weights > 0) or ``"multivector": [[...], ...]``
  (one unit row per token);
* ``--format npy`` writes a ``.npz`` archive of flat arrays, CSR style: text
  ``i``'s entries are rows ``offsets[i]:offsets[i + 1]``:

  - sparse: ``indices`` (int64), ``values`` (float32), ``offsets`` (int64, n + 1);
    ``scipy.sparse.csr_matrix((values, indices, offsets), shape=(n, vocabulary size))``
    reads it as one matrix;
  - multivector: ``vectors`` (float32, (total tokens, dim)) and ``offsets``
    (int64, n + 1).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..inputs import Input

__all__ = ["OUTPUT_KINDS", "embed_token_outputs", "token_outputs_json", "token_outputs_npz"]

OUTPUT_KINDS = ("dense", "sparse", "multivector")


def embed_token_outputs(model: Any, items: list[Input], output: str, *, truncate: bool) -> list[Any]:
    """Per item (all texts), its sparse vector or its (tokens, dim) array."""
    for i, item in enumerate(items):
        if item.kind != "text":
            raise ConfigError(f"--output {output} is given for texts only, but input #{i} is an "
                              f"{'image+text pair' if item.kind == 'pair' else 'image'}; embed it with --output dense")
    result = model.embed_text_outputs([item.text for item in items], outputs=(output,), truncate=truncate)
    return list(result.sparse if output == "sparse" else result.multivector)


def token_outputs_json(output: str, values: list[Any]) -> list[Any]:
    """The JSON form of each item's output (see the module docstring)."""
    if output == "sparse":
        return [s.to_qdrant() for s in values]  # {"indices": [...], "values": [...]}
    return [np.asarray(m, dtype=np.float32).tolist() for m in values]


def token_outputs_npz(output: str, values: list[Any]) -> bytes:
    """The ``.npz`` bytes of the outputs (see the module docstring)."""
    sizes = [len(s.indices) for s in values] if output == "sparse" else [len(m) for m in values]
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
    buf = io.BytesIO()
    if output == "sparse":
        indices = np.concatenate([s.indices for s in values]).astype(np.int64) if values else np.zeros(0, np.int64)
        weights = np.concatenate([s.values for s in values]).astype(np.float32) if values else np.zeros(0, np.float32)
        np.savez(buf, indices=indices, values=weights, offsets=offsets)
    else:
        vectors = np.concatenate([np.asarray(m, dtype=np.float32) for m in values])
        np.savez(buf, vectors=vectors, offsets=offsets)
    return buf.getvalue()
