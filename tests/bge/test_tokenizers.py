"""The test models' tokenizers have real vocabularies: English and Chinese texts become real token ids.

Both families' builders (WordPiece for Visualized-BGE base-en, the XLM-R
SentencePiece model for BGE-M3 and Visualized-BGE m3) are checked on texts in
and outside the corpus they were built from: no text may come out as unknown
tokens only, and few tokens may be unknown at all. Also: the ``tokenizers``
file crossmodal reads gives the ids transformers' tokenizer gives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmodal.bge.tokens import BgeTokenizer

ENGLISH = ["a photo of a cat", "The dog runs on the beach at dawn.", "quantum chromodynamics", "Hello, world!",
           "Visualized BGE embeds images and texts"]
CHINESE = ["一只猫", "两只狗在雪地里奔跑。", "今天天气很好", "北京是中国的首都", "我们一起去公园散步吧！"]


@pytest.fixture(scope="module", params=["wordpiece", "xlmr"])
def tokenizer_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossmodal.testing.bge import write_wordpiece_tokenizer, write_xlmr_tokenizer

    out = tmp_path_factory.mktemp(request.param)
    (write_wordpiece_tokenizer if request.param == "wordpiece" else write_xlmr_tokenizer)(out)
    return out


@pytest.mark.parametrize("text", ENGLISH + CHINESE)
def test_texts_tokenize_to_real_ids(tokenizer_dir: Path, text: str) -> None:
    tok = BgeTokenizer.from_dir(tokenizer_dir)
    ids = tok.ids(text)[1:-1]
    assert ids, text
    unknown = sum(i == tok.specials.unk for i in ids)
    assert unknown < len(ids), (text, ids)  # never only unknown tokens
    assert unknown <= len(ids) // 4, (text, ids)


def test_vocabulary_holds_english_words_and_chinese_characters(tokenizer_dir: Path) -> None:
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab()
    assert len(vocab) > 700
    assert sum("\u4e00" <= ch <= "\u9fff" for token in vocab for ch in token) > 400
    words = {token.strip("\u2581").lower() for token in vocab}
    assert {"the", "photo", "cat", "dog"} <= words


def test_tokenizers_file_gives_the_transformers_ids(tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tok = BgeTokenizer.from_dir(tokenizer_dir)
    for text in ENGLISH + CHINESE + [""]:
        assert tok.ids(text) == reference(text)["input_ids"], text


def test_special_tokens_are_read_from_the_directory(tokenizer_dir: Path) -> None:
    tok = BgeTokenizer.from_dir(tokenizer_dir)
    empty = tok.ids("")
    assert empty == [tok.specials.cls, tok.specials.sep]
    assert tok.specials.pad not in empty and tok.specials.unk is not None
