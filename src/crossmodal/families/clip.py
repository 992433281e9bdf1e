"""The CLIP family (OpenAI CLIP and its repackagings: Xenova, Qdrant/fastembed ONNX exports).

Byte-level BPE tokenizer padded to the longest text (causal attention makes
the pooled end-of-text token independent of padding after it), a linear
projection of each tower's pooled output, and a shortest-side resize plus
center crop.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..models.spec import TextPreprocess
from .base import TinyModelOptions
from .two_tower import TINY_TEXT, TINY_VISION, TwoTowerFamily

__all__ = ["CLIP", "ClipFamily", "write_clip_tokenizer"]


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level alphabet: printable bytes map to themselves, the rest to 256+.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def write_clip_tokenizer(out: Path, bpe_gz: bytes, context_length: int = 77) -> None:
    """vocab.json + merges.txt in the layout of openai/clip-*, then the fast tokenizer files."""
    from transformers import CLIPTokenizer

    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    alphabet = list(_bytes_to_unicode().values())
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    tok = CLIPTokenizer(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"), model_max_length=context_length)
    tok.save_pretrained(str(out))


class ClipFamily(TwoTowerFamily):
    name = "clip"
    projection = "linear (visual_projection / text_projection, no bias)"

    def _text(self, context: int) -> TextPreprocess:
        return TextPreprocess("clip-bpe", context, "longest", ("input_ids", "attention_mask"))

    def _write_tokenizer(self, out: Path, options: TinyModelOptions) -> int:
        if options.vocab is None:
            raise ModelLoadError("a CLIP test model needs the CLIP BPE vocabulary: pass TinyModelOptions(vocab=...)")
        write_clip_tokenizer(out, options.vocab(), 77)
        return 49408

    def _config(self, options: TinyModelOptions, vocab_size: int) -> Any:
        from transformers import CLIPConfig

        if options.size != "tiny":
            return CLIPConfig()  # the defaults are openai/clip-vit-base-patch32's architecture
        return CLIPConfig(
            text_config={**TINY_TEXT, "vocab_size": vocab_size, "max_position_embeddings": 77,
                         "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407},
            vision_config=TINY_VISION,
            projection_dim=options.projection_dim or 24,
        )

    def _model_class(self) -> Any:
        from transformers import CLIPModel

        return CLIPModel

    def _image_processor(self, side: int) -> Any:
        # The PIL processors: torchvision is not needed, and they are the reference crossmodal matches.
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        return CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})


CLIP = ClipFamily()
