"""The SigLIP family (Google's sigmoid-loss two-tower models).

SentencePiece tokenizer padded to the full context length (as trained; the
text head pools the last position), no projection_dim (the heads keep the
text hidden size), and a plain squash resize to a square.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..models.spec import TextPreprocess
from .base import TinyModelOptions
from .two_tower import TINY_TEXT, TINY_VISION, TwoTowerFamily, text_config

__all__ = ["SIGLIP", "SiglipFamily"]


class SiglipFamily(TwoTowerFamily):
    name = "siglip"
    projection = "vision: attention-pooling head; text: linear head on the last token"

    def _dim(self, config: dict[str, Any]) -> int:
        # SigLIP's towers end in heads of the text hidden size; there is no projection_dim.
        return int(text_config(config).get("projection_size") or text_config(config).get("hidden_size", 768))

    def _text(self, context: int) -> TextPreprocess:
        return TextPreprocess("sentencepiece", context, "max_length", ("input_ids",))

    def _write_tokenizer(self, out: Path, options: TinyModelOptions) -> int:
        import sentencepiece as spm
        from transformers import SiglipTokenizer

        if not options.corpus:
            raise ModelLoadError("a SigLIP test model trains its vocabulary: pass TinyModelOptions(corpus=...)")
        context = 16 if options.size == "tiny" else 64
        out.mkdir(parents=True, exist_ok=True)
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(options.corpus),
            model_writer=model,
            vocab_size=300,
            model_type="unigram",
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            character_coverage=1.0,
            hard_vocab_limit=False,
            minloglevel=3,
        )
        (out / "spiece.model").write_bytes(model.getvalue())
        tok = SiglipTokenizer(vocab_file=str(out / "spiece.model"), model_max_length=context)
        tok.save_pretrained(str(out))
        return int(tok.vocab_size)

    def _config(self, options: TinyModelOptions, vocab_size: int) -> Any:
        from transformers import SiglipConfig

        tiny = options.size == "tiny"
        return SiglipConfig(
            text_config={**({**TINY_TEXT, "max_position_embeddings": 16} if tiny else {"max_position_embeddings": 64}),
                         "vocab_size": vocab_size, "pad_token_id": 1, "eos_token_id": 1, "bos_token_id": None},
            vision_config=TINY_VISION if tiny else {"image_size": 224, "patch_size": 16},
        )

    def _model_class(self) -> Any:
        from transformers import SiglipModel

        return SiglipModel

    def _image_processor(self, side: int) -> Any:
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

        return SiglipImageProcessorPil(size={"height": side, "width": side})


SIGLIP = SiglipFamily()
