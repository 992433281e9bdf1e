"""crossmodal's BGE-M3 equals BAAI's ``BGEM3FlagModel`` on the same seeded weights.

Dense, sparse and ColBERT outputs (also with ``truncate_dim`` and with a
``max_length`` that cuts texts), ``compute_score`` with the default and custom
weights, and ``colbert_score``, on both runtimes. Measured max |diff|: dense and
ColBERT about 2e-7, sparse weights (unnormalized, around 1) about 7e-7, scores
about 2e-7; the bound is 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest

from ..reference.bge_reference import sparse_of
from .inputs import M3_MAX_LENGTH, M3_PAIRS, M3_SHORT, M3_TEXTS, M3_TRUNCATE_DIM, M3_WEIGHTS

ATOL = 1e-5


def _check_outputs(out, ref, name: str, *, sparse: bool = True) -> None:
    assert np.abs(out.dense - ref[f"{name}.dense"]).max() <= ATOL
    for i in range(len(M3_TEXTS)):
        ref_colbert = ref[f"{name}.colbert.{i}"]
        assert out.colbert[i].shape == ref_colbert.shape
        assert np.abs(out.colbert[i] - ref_colbert).max() <= ATOL
        if sparse:
            ids, weights = sparse_of(ref, name, i)
            assert np.array_equal(out.sparse[i].indices, ids)
            assert out.sparse[i].values.dtype == np.float32
            assert np.abs(out.sparse[i].values - weights).max() <= ATOL


def test_dense_sparse_colbert_equal_the_reference(m3, m3_reference) -> None:
    out = m3.encode(M3_TEXTS, dense=True, sparse=True, colbert=True, max_tokens=M3_MAX_LENGTH)
    _check_outputs(out, m3_reference, "all")
    _check_outputs(out, m3_reference, "all_b2")  # the reference sorts by length and pads per batch


def test_truncated_texts_equal_the_reference(m3, m3_reference) -> None:
    out = m3.encode(M3_TEXTS, dense=True, sparse=True, colbert=True, max_tokens=M3_SHORT)
    assert max(len(v) for v in out.colbert) == M3_SHORT - 1  # the long texts were cut
    _check_outputs(out, m3_reference, "short")


def test_truncate_dim_equals_the_reference(m3, m3_reference) -> None:
    out = m3.encode(M3_TEXTS, dense=True, colbert=True, truncate_dim=M3_TRUNCATE_DIM, max_tokens=M3_MAX_LENGTH)
    assert out.dense.shape == (len(M3_TEXTS), M3_TRUNCATE_DIM)
    np.testing.assert_allclose(np.linalg.norm(out.dense, axis=1), 1.0, atol=1e-6)
    _check_outputs(out, m3_reference, "dim", sparse=False)


def test_sparse_output_drops_special_tokens_and_keeps_the_max_of_repeats(m3) -> None:
    text = "the the the cat the"
    vec = m3.encode([text], sparse=True, max_tokens=M3_MAX_LENGTH).sparse[0]
    batch = m3.tokenizer.encode([text], max_tokens=M3_MAX_LENGTH)
    weights = m3.graphs.run(batch.input_ids, batch.attention_mask)[1][0]
    ids = batch.input_ids[0]
    specials = m3.tokenizer.specials.lexical_exclusions
    expected = {}
    for token, w in zip(ids.tolist(), weights.tolist()):
        if token not in specials and w > 0:
            expected[token] = max(w, expected.get(token, 0.0))
    assert np.all(np.diff(vec.indices) > 0) and np.all(vec.values > 0)
    assert vec.indices.tolist() == sorted(expected)
    np.testing.assert_array_equal(vec.values, np.float32([expected[k] for k in sorted(expected)]))
    assert len(ids) - 2 > len(set(ids.tolist()) - specials)  # the text does repeat tokens


def test_compute_score_equals_the_reference(m3, m3_reference) -> None:
    from crossmodal.bge.m3_outputs import score_pairs

    queries = m3.encode([q for q, _ in M3_PAIRS], sparse=True, colbert=True, max_tokens=M3_MAX_LENGTH)
    passages = m3.encode([p for _, p in M3_PAIRS], sparse=True, colbert=True, max_tokens=M3_MAX_LENGTH)
    for name, weights in (("score", (1.0, 1.0, 1.0)), ("score_weighted", tuple(M3_WEIGHTS))):
        scores = score_pairs(queries, passages, weights)
        for key, values in scores.items():
            assert np.abs(values - m3_reference[f"{name}.{key}"]).max() <= ATOL, (name, key)


def test_colbert_score_equals_the_reference(m3, m3_reference) -> None:
    from crossmodal.bge.m3_outputs import colbert_score

    q, p = (m3.encode([t], dense=False, colbert=True, max_tokens=M3_MAX_LENGTH).colbert[0] for t in M3_PAIRS[1])
    assert abs(colbert_score(q, p) - float(m3_reference["colbert_score"])) <= ATOL


def test_token_ids_equal_the_reference_tokenizer(m3, m3_reference) -> None:
    assert [m3.tokenizer.ids(t) for t in M3_TEXTS] == m3_reference.meta["tokens"]


def test_reference_loaded_both_head_files(m3_reference) -> None:
    assert any("loading existing colbert_linear and sparse_linear" in line for line in m3_reference.meta["load_log"])


def test_sparse_output_in_the_forms_qdrant_pgvector_and_the_reference_take(m3, m3_reference) -> None:
    out = m3.encode(M3_TEXTS[:3], sparse=True, max_tokens=M3_MAX_LENGTH)
    for i, vec in enumerate(out.sparse):
        ids, weights = sparse_of(m3_reference, "all", i)
        lexical = vec.as_lexical_weights()  # the reference's own {str(id): weight}
        assert list(lexical) == [str(t) for t in ids.tolist()]
        assert np.abs(np.float32(list(lexical.values())) - weights).max() <= ATOL
        qdrant = vec.to_qdrant()
        assert qdrant["indices"] == ids.tolist() and len(qdrant["values"]) == len(ids)
        text = vec.to_sparsevec(m3.vocab_size)
        body, dim = text[1:].split("}/")
        assert int(dim) == m3.vocab_size > int(ids.max())
        pairs = [item.split(":") for item in body.split(",")]
        assert [int(k) - 1 for k, _ in pairs] == ids.tolist()  # sparsevec indices start at 1
        np.testing.assert_array_equal(np.float32([float(v) for _, v in pairs]), vec.values)  # exact round trip


def test_sparsevec_refuses_ids_beyond_its_dimension(m3) -> None:
    from crossmodal.errors import ConfigError

    vec = m3.encode(["a photo of a cat"], sparse=True).sparse[0]
    with pytest.raises(ConfigError, match="does not fit"):
        vec.to_sparsevec(int(vec.indices.max()))


def test_dense_is_a_raw_automodels_normalized_cls_token_not_its_pooler_output(m3, m3_dir) -> None:
    """What users of a raw transformers AutoModel get right (CLS) and wrong (pooler_output)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(m3_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(m3_dir))
    with torch.no_grad():
        out = model(**tokenizer(M3_TEXTS, padding=True, truncation=True, max_length=M3_MAX_LENGTH,
                                return_tensors="pt"))
    cls = torch.nn.functional.normalize(out.last_hidden_state[:, 0], dim=-1).numpy()
    pooled = torch.nn.functional.normalize(out.pooler_output, dim=-1).numpy()
    ours = m3.encode(M3_TEXTS, max_tokens=M3_MAX_LENGTH).dense
    assert np.abs(ours - cls).max() <= ATOL
    assert np.abs(ours - pooled).max() > 0.1
