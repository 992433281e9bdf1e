"""The seeded tiny models: their tokenizers hold real vocabularies, so text parity tests compare real token ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..preprocessing.test_texts import TEXTS as TOKENIZER_TEXTS
from ..test_embedder import TEXTS as EMBEDDER_TEXTS

transformers = pytest.importorskip("transformers")

CAPTIONS = ["a red circle", "a blue square", "a green triangle", "红色的圆", "蓝色的方块", "一条龙", "一只蓝鲸"]


def test_the_chinese_clip_vocabulary_tells_texts_apart(tiny_chinese_clip_dir: Path) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_chinese_clip_dir))
    config = json.loads((tiny_chinese_clip_dir / "config.json").read_text())
    assert len(tok) == config["text_config"]["vocab_size"] > 20_000  # every CJK ideograph, and English words
    texts = list(dict.fromkeys([*EMBEDDER_TEXTS, *TOKENIZER_TEXTS, *CAPTIONS]))
    ids = [tuple(tok(text)["input_ids"]) for text in texts]
    assert len(set(ids)) == len(texts), "two different texts encode to the same ids"
    specials = {tok.cls_token_id, tok.sep_token_id}
    for text, seq in zip(texts, ids):
        words = [i for i in seq if i not in specials]
        assert words and any(i != tok.unk_token_id for i in words), f"{text!r} is only unknown tokens: {seq}"
    # Chinese is split into characters, each its own token; English words known whole stay whole.
    assert tok.convert_ids_to_tokens(tok("一条龙")["input_ids"]) == ["[CLS]", "一", "条", "龙", "[SEP]"]
    assert tok.convert_ids_to_tokens(tok("a red circle")["input_ids"]) == ["[CLS]", "a", "red", "circle", "[SEP]"]
