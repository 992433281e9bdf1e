"""Tokenization equals the model's own transformers tokenizer, with each family's padding rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossmodal.errors import EmptyText, InputError, TextTooLong
from crossmodal.families import FAMILIES
from crossmodal.preprocessing.texts import FastTokenizer, SentencePieceTokenizer, encode, load_tokenizer, over_context

transformers = pytest.importorskip("transformers")

LONG = " ".join(["a very long caption about a dog running on a beach"] * 20)
TEXTS = [
    "a dog",
    "A Photo of a CAT, sitting on a chair!",
    "一条龙",
    "一只蓝鲸 and a whale",
    "emoji 🐶🐱 and accents: café, naïve, Ångström",
    "  lots   of\twhitespace\n here  ",
    "punctuation... (really) 'quoted' \"double\" -- dashes; semi:colons?",
    "x",
    LONG,
]


def _reference_ids(root: Path, family: str, texts: list[str], context: int) -> np.ndarray:
    tok = transformers.AutoTokenizer.from_pretrained(str(root))
    if family == "siglip":
        out = tok(texts, padding="max_length", max_length=context, truncation=True, return_tensors="np")
    else:
        out = tok(texts, padding=True, truncation=True, max_length=context, return_tensors="np")
    return out["input_ids"]


@pytest.mark.parametrize("fixture", ["tiny_clip_dir", "tiny_chinese_clip_dir", "tiny_siglip_dir"])
def test_token_ids_equal_the_reference_tokenizer(fixture: str, request: pytest.FixtureRequest) -> None:
    root: Path = request.getfixturevalue(fixture)
    spec = FAMILIES.read_spec(FAMILIES.detect(root), "tiny")
    tokenizer = load_tokenizer(root, spec.text)
    ours = encode(tokenizer, TEXTS)["input_ids"]
    ref = _reference_ids(root, spec.family, TEXTS, spec.text.context_length)
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("fixture", ["tiny_clip_onnx_dir", "tiny_chinese_clip_onnx_dir", "tiny_siglip_onnx_dir"])
def test_exported_tokenizer_files_give_the_same_ids(fixture: str, request: pytest.FixtureRequest) -> None:
    root: Path = request.getfixturevalue(fixture)
    source: Path = request.getfixturevalue(fixture.replace("_onnx", ""))
    spec = FAMILIES.read_spec(FAMILIES.detect(root), "tiny")
    np.testing.assert_array_equal(
        encode(load_tokenizer(root, spec.text), TEXTS)["input_ids"],
        encode(load_tokenizer(source, spec.text), TEXTS)["input_ids"],
    )


def test_backends_match_the_family(tiny_clip_dir: Path, tiny_siglip_dir: Path) -> None:
    clip = FAMILIES.read_spec(FAMILIES.detect(tiny_clip_dir), "c")
    siglip = FAMILIES.read_spec(FAMILIES.detect(tiny_siglip_dir), "s")
    assert isinstance(load_tokenizer(tiny_clip_dir, clip.text), FastTokenizer)
    assert isinstance(load_tokenizer(tiny_siglip_dir, siglip.text), SentencePieceTokenizer)


def test_clip_pads_to_the_longest_and_siglip_to_max_length(tiny_clip_dir: Path, tiny_siglip_dir: Path) -> None:
    clip = FAMILIES.read_spec(FAMILIES.detect(tiny_clip_dir), "c")
    ids = encode(load_tokenizer(tiny_clip_dir, clip.text), ["a dog", "a photo of a cat"])
    assert ids["input_ids"].shape == (2, 7)  # <start> a photo of a cat <end>
    assert ids["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0, 0], [1] * 7]
    siglip = FAMILIES.read_spec(FAMILIES.detect(tiny_siglip_dir), "s")
    assert siglip.text.padding == "max_length" and siglip.text.inputs == ("input_ids",)
    ids = encode(load_tokenizer(tiny_siglip_dir, siglip.text), ["a dog", "a photo of a cat"])
    assert set(ids) == {"input_ids"}  # SigLIP was trained without an attention mask
    assert ids["input_ids"].shape == (2, siglip.text.context_length)


def test_over_long_text_is_truncated_by_default_and_refused_on_request(tiny_clip_dir: Path) -> None:
    spec = FAMILIES.read_spec(FAMILIES.detect(tiny_clip_dir), "c")
    tok = load_tokenizer(tiny_clip_dir, spec.text)
    ids = encode(tok, [LONG])["input_ids"]
    assert ids.shape == (1, 77)
    assert ids[0, -1] == tok.pad_id  # the end-of-text token survives truncation (pad == eos for CLIP)
    with pytest.raises(TextTooLong, match=r"input #1: text 'a very long caption.*' has \d+ tokens, over the model's "
                                          r"context length of 77, and truncation is off"):
        encode(tok, ["fine", LONG], truncate=False)


@pytest.mark.parametrize("fixture", ["tiny_clip_dir", "tiny_siglip_dir", "tiny_chinese_clip_dir"])
def test_every_tokenizer_says_which_texts_it_cut(fixture: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(fixture)
    spec = FAMILIES.read_spec(FAMILIES.detect(root), "m")
    tok = load_tokenizer(root, spec.text)
    context = spec.text.context_length
    tokens = tok.tokenize(["a dog", LONG, ""])
    assert tokens[0].truncated is False and tokens[1].truncated is True and len(tokens[1].ids) == context
    assert over_context(tok, ["a dog", LONG, "", 3]) == [False, True, False, False]
    exactly = tok.tokenize(["a " * 400])[0]  # cut, and so marked, whatever the family's tokens for "a" are
    assert exactly.truncated and len(exactly.ids) == context
    assert not tok.tokenize(["a " * (context // 4)])[0].truncated


def test_empty_and_non_string_texts_are_refused_by_position(tiny_clip_dir: Path) -> None:
    spec = FAMILIES.read_spec(FAMILIES.detect(tiny_clip_dir), "c")
    tok = load_tokenizer(tiny_clip_dir, spec.text)
    with pytest.raises(EmptyText, match="input #2: empty text '  '"):
        encode(tok, ["a", "b", "  "])
    with pytest.raises(InputError, match="input #0: texts must be str, got int"):
        encode(tok, [3])
    results = tok.tokenize(["ok", "", None])
    assert not isinstance(results[0], InputError)
    assert isinstance(results[1], EmptyText) and isinstance(results[2], InputError)


# ------------------------------------------------------------------------------------- batches by token budget


def test_token_batches_keep_each_call_within_the_budgets() -> None:
    from crossmodal.preprocessing import texts

    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.choice([3, 40, 512, 2000, 8192], size=300)]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = list(texts.token_batches(order, lengths, 64))
    assert [i for b in batches for i in b] == order  # every position once, in the order given
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 64
        assert len(batch) == 1 or (len(batch) * longest <= texts.BATCH_TOKENS
                                   and len(batch) * longest**2 <= texts.BATCH_ATTENTION)
    largest: dict[int, int] = {}
    for b in batches:
        largest[lengths[b[-1]]] = max(largest.get(lengths[b[-1]], 0), len(b))
    assert largest[40] == 64 and largest[512] == 64 and largest[2000] == 4 and largest[8192] == 1
    assert list(texts.token_batches([], [], 8)) == []


def test_long_texts_are_embedded_fewer_at_a_time_with_the_same_vectors(tiny_clip_dir: Path, monkeypatch) -> None:
    import crossmodal
    from crossmodal.preprocessing import texts

    model = crossmodal.load_model(tiny_clip_dir, runtime="torch")
    words = ["a cat", "a dog on a red mat " * 3, "the " * 70, "one two three four five " * 10]
    batch = [words[i % 4] for i in range(40)]
    expected = model.embed_texts(batch)
    monkeypatch.setattr(texts, "BATCH_TOKENS", 10 * 77)  # ten texts of CLIP's full 77 tokens
    calls: list[tuple[int, int]] = []
    encode_texts = model.encoder.encode_texts
    monkeypatch.setattr(model.encoder, "encode_texts",
                        lambda inputs: calls.append(inputs["input_ids"].shape) or encode_texts(inputs))
    np.testing.assert_allclose(model.embed_texts(batch), expected, atol=1e-6)
    assert calls and all(rows * length <= 10 * 77 for rows, length in calls)
    assert sum(rows for rows, _ in calls) == 40 and max(rows for rows, _ in calls) > 10  # short ones still go many
