"""The Chinese-CLIP family (OFA-Sys: a ViT with a RoBERTa-wwm text tower).

WordPiece tokenizer (with token type ids) padded to the longest text, linear
projections of the [CLS] tokens, and a squash resize to a square without a
crop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models.spec import TextPreprocess
from .base import TinyModelOptions
from .two_tower import TINY_TEXT, TINY_VISION, TwoTowerFamily

__all__ = ["CHINESE_CLIP", "ChineseClipFamily"]

# English words a test or a demo caption uses whole; any other word is spelled with the ##-pieces.
_WORDPIECE_WORDS = (
    "a an the photo picture of and in on at near under with two red blue green yellow black white circle square "
    "triangle cat cats dog dogs dragon whale snow tower night lit up eiffel beach boat lake cake camera bee book "
    "chess horse tree flower city street sitting running caption number"
).split()


def _wordpiece_vocab() -> list[str]:
    """Specials, ASCII, some whole English words, ##-pieces for the rest, and every CJK unified ideograph."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ascii_chars = [chr(c).lower() for c in range(33, 127)]
    pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    cjk = [chr(c) for c in range(0x4E00, 0xA000)]  # the whole CJK Unified Ideographs block, as BERT splits them
    seen: dict[str, None] = {}
    for tok in specials + ascii_chars + _WORDPIECE_WORDS + pieces + cjk:
        seen.setdefault(tok, None)
    return list(seen)


class ChineseClipFamily(TwoTowerFamily):
    name = "chinese_clip"
    projection = "linear on the [CLS] token (text) and the pooled CLS (vision), no bias"

    def _text(self, context: int) -> TextPreprocess:
        return TextPreprocess("wordpiece", context, "longest", ("input_ids", "attention_mask", "token_type_ids"))

    def _write_tokenizer(self, out: Path, options: TinyModelOptions) -> int:
        from transformers import BertTokenizer

        vocab = _wordpiece_vocab()
        out.mkdir(parents=True, exist_ok=True)
        (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        # transformers 5 reads the vocabulary from ``vocab=`` (a ``vocab_file=`` argument is silently ignored,
        # leaving only the five special tokens).
        tok = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True, model_max_length=52)
        if len(tok) != len(vocab):
            raise RuntimeError(f"the WordPiece tokenizer holds {len(tok)} tokens, not the {len(vocab)} written")
        tok.save_pretrained(str(out))
        return len(vocab)

    def _config(self, options: TinyModelOptions, vocab_size: int) -> Any:
        from transformers import ChineseCLIPConfig

        tiny = options.size == "tiny"
        return ChineseCLIPConfig(
            text_config={**({**TINY_TEXT, "max_position_embeddings": 64} if tiny else {}),
                         "vocab_size": vocab_size, "pad_token_id": 0, "bos_token_id": None, "eos_token_id": None},
            vision_config=TINY_VISION if tiny else {"image_size": 224, "patch_size": 16},
            projection_dim=options.projection_dim or (24 if tiny else 512),
        )

    def _model_class(self) -> Any:
        from transformers import ChineseCLIPModel

        return ChineseCLIPModel

    def _image_processor(self, side: int) -> Any:
        from transformers.models.chinese_clip.image_processing_pil_chinese_clip import ChineseCLIPImageProcessorPil

        # Like OFA-Sys/chinese-clip-vit-base-patch16: squash to a square, no crop.
        return ChineseCLIPImageProcessorPil(size={"height": side, "width": side}, do_center_crop=False)


CHINESE_CLIP = ChineseClipFamily()
