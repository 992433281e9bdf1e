"""Texts -> token id arrays, following each model's own tokenizer and padding rule.

Two backends sit behind one small interface (:class:`Tokenizer`):

* :class:`FastTokenizer` reads a ``tokenizer.json`` with the ``tokenizers``
  library (CLIP's byte-level BPE, Chinese-CLIP's WordPiece, and any hub ONNX
  repo). Directories that only hold ``vocab.json``/``merges.txt`` or
  ``vocab.txt`` are converted once by transformers, when it is installed.
* :class:`SentencePieceTokenizer` runs SigLIP's ``spiece.model`` exactly as
  transformers' ``SiglipTokenizer`` does (lowercase, strip punctuation, one
  end-of-sequence token).

Padding follows the spec: ``longest`` pads to the longest text in the batch
(CLIP: causal attention makes the pooled token independent of what follows it),
``max_length`` pads every text to the context length (SigLIP, as trained).

The truncation rule, the same on every path (library, CLI, HTTP): a text over
the context length is cut to it, keeping the end-of-text token, as the
reference tokenizers do (``truncate=True``, the default); each such text's
:attr:`Tokens.truncated` says so, which the CLI and the server report. With
``truncate=False`` it is refused with :class:`TextTooLong` naming the text.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import EmptyText, InputError, ModelLoadError, RuntimeUnavailable, TextTooLong
from ..models.files import read_json
from ..models.spec import TextPreprocess

__all__ = ["FastTokenizer", "SentencePieceTokenizer", "Tokenizer", "Tokens", "check_text", "encode", "load_tokenizer",
           "over_context", "pad", "token_batches", "within"]

_DEFAULT_PAD = {"clip-bpe": "<|endoftext|>", "sentencepiece": "</s>", "wordpiece": "[PAD]"}


@dataclass
class Tokens:
    """One tokenized text: its ids (special tokens included), token type ids, and whether it was cut to fit."""

    ids: list[int]
    type_ids: list[int] | None = None
    truncated: bool = False


class Tokenizer(Protocol):
    cfg: TextPreprocess
    pad_id: int

    def tokenize(self, texts: Sequence[Any], *, truncate: bool = True) -> list[Tokens | InputError]:
        """Tokens per text, or the error that text raises (so a batch can skip it)."""
        ...


def _preview(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def check_text(text: Any, index: int | None = None) -> str:
    """Reject what cannot be a text input, naming it."""
    if not isinstance(text, str):
        err = InputError(f"texts must be str, got {type(text).__name__}", input=repr(text)[:60])
        raise err.at(index) if index is not None else err
    if not text.strip():
        err = EmptyText(f"empty text {text!r}: there is nothing to embed", input=text)
        raise err.at(index) if index is not None else err
    return text


def _too_long(text: str, n: int, cfg: TextPreprocess) -> TextTooLong:
    return TextTooLong(
        f"text {_preview(text)} has {n} tokens, over the model's context length of {cfg.context_length}, "
        "and truncation is off",
        input=text,
    )


def _pad_rows(rows: list[list[int]], width: int, pad_id: int) -> np.ndarray:
    out = np.full((len(rows), width), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


#: at most this many tokens (rows x longest row) in one text-tower call, and this much attention (rows x
#: longest row squared): 64 texts of 512 tokens. Long texts go fewer at a time; an 8192-token text goes alone.
BATCH_TOKENS = 64 * 512
BATCH_ATTENTION = 64 * 512 * 512


def token_batches(order: Sequence[int], lengths: Sequence[int], size: int) -> Iterator[list[int]]:
    """``order`` (positions, by ascending token length) cut into batches of at most ``size`` positions, each
    within :data:`BATCH_TOKENS` and :data:`BATCH_ATTENTION` for its longest row, so that a batch of long texts
    (BGE-M3 takes 8192 tokens) never asks for the memory of ``size`` such texts at once."""
    batch: list[int] = []
    for i in order:
        n = max(int(lengths[i]), 1)
        rows = len(batch) + 1
        if batch and (rows > size or rows * n > BATCH_TOKENS or rows * n * n > BATCH_ATTENTION):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def pad(tokenizer: Tokenizer, batch: Sequence[Tokens]) -> dict[str, np.ndarray]:
    """Model inputs for ``batch``: padded to the longest, or to the context length (``max_length``)."""
    cfg = tokenizer.cfg
    lengths = [len(t.ids) for t in batch]
    width = cfg.context_length if cfg.padding == "max_length" else max(lengths)
    arrays = {"input_ids": _pad_rows([t.ids for t in batch], width, tokenizer.pad_id)}
    if "attention_mask" in cfg.inputs:
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        arrays["attention_mask"] = mask
    if "token_type_ids" in cfg.inputs:
        arrays["token_type_ids"] = _pad_rows([t.type_ids or [0] * len(t.ids) for t in batch], width, 0)
    return arrays


def encode(tokenizer: Tokenizer, texts: Sequence[Any], *, truncate: bool = True) -> dict[str, np.ndarray]:
    """Tokenize and pad ``texts`` in one go, raising the first bad text's error."""
    tokens = tokenizer.tokenize(texts, truncate=truncate)
    for i, tok in enumerate(tokens):
        if isinstance(tok, InputError):
            raise tok.at(i)
    return pad(tokenizer, tokens)  # type: ignore[arg-type]


def within(tokens: Sequence[Tokens | InputError], texts: Sequence[Any], limit: int | None,
           truncate: bool) -> list[Tokens | InputError]:
    """``tokens`` held to ``limit`` tokens by the same rule as the context length (a shorter budget some inputs
    have, e.g. the text of an image+text pair that shares its sequence with image tokens)."""
    out: list[Tokens | InputError] = []
    for text, tok in zip(texts, tokens):
        if limit is None or not isinstance(tok, Tokens) or len(tok.ids) <= limit:
            out.append(tok)
        elif not truncate:
            out.append(TextTooLong(f"text {_preview(text)} has {len(tok.ids)} tokens, over the {limit} a text can have "
                                   "in an image+text pair with this model, and truncation is off", input=text))
        else:
            type_ids = None if tok.type_ids is None else tok.type_ids[: limit - 1] + tok.type_ids[-1:]
            out.append(Tokens(tok.ids[: limit - 1] + tok.ids[-1:], type_ids, truncated=True))
    return out


def over_context(tokenizer: Tokenizer, texts: Sequence[Any]) -> list[bool]:
    """Which ``texts`` are over the context length: cut to fit by default, refused with ``truncate=False``.

    A text that cannot be embedded at all (empty, not a string) is not over it.
    """
    return [isinstance(t, Tokens) and t.truncated for t in tokenizer.tokenize(texts)]


def _token_name(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _pad_token(root: Path, cfg: TextPreprocess) -> str:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = root / name
        if path.is_file():
            token = _token_name(read_json(path).get("pad_token"))
            if token:
                return token
    return _DEFAULT_PAD[cfg.tokenizer]


class FastTokenizer:
    """A ``tokenizers`` tokenizer with crossmodal's padding and truncation rules."""

    def __init__(self, backend: Any, cfg: TextPreprocess, pad_token: str) -> None:
        self.cfg = cfg
        backend.no_padding()
        backend.enable_truncation(max_length=cfg.context_length)
        self._backend = backend
        pad_id = backend.token_to_id(pad_token)
        if pad_id is None:
            raise ModelLoadError(f"pad token {pad_token!r} is not in the tokenizer's vocabulary")
        self.pad_id = int(pad_id)

    @classmethod
    def from_file(cls, path: Path, cfg: TextPreprocess, pad_token: str) -> FastTokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        try:
            backend = HFTokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises plain Exceptions
            raise ModelLoadError(f"cannot read tokenizer {path}: {exc}") from exc
        return cls(backend, cfg, pad_token)

    def tokenize(self, texts: Sequence[Any], *, truncate: bool = True) -> list[Tokens | InputError]:
        out: list[Tokens | InputError] = []
        good: list[int] = []
        for i, text in enumerate(texts):
            try:
                check_text(text)
                good.append(i)
                out.append(Tokens([]))
            except InputError as exc:
                out.append(exc)
        encodings = self._backend.encode_batch([texts[i] for i in good]) if good else []
        for i, enc in zip(good, encodings):
            if enc.overflowing and not truncate:
                full = len(enc.ids) + sum(len(o.ids) for o in enc.overflowing)
                out[i] = _too_long(texts[i], full, self.cfg)
            else:
                out[i] = Tokens(enc.ids, enc.type_ids, truncated=bool(enc.overflowing))
        return out


class SentencePieceTokenizer:
    """SigLIP's tokenizer: transformers' ``SiglipTokenizer`` behaviour on ``spiece.model``."""

    def __init__(self, model_file: Path, cfg: TextPreprocess, config: dict[str, Any]) -> None:
        try:
            import sentencepiece as spm
        except ImportError as exc:
            raise RuntimeUnavailable(
                f"{model_file.parent} has only a SentencePiece tokenizer; install `sentencepiece` "
                "(pip install 'crossmodal[torch]') or use a repo with tokenizer.json"
            ) from exc
        self.cfg = cfg
        sp = spm.SentencePieceProcessor()
        sp.Load(str(model_file))
        if config.get("legacy", True) is False:
            # Non-legacy tokenizers switch off the dummy prefix and add "▁" themselves.
            from sentencepiece import sentencepiece_model_pb2 as pb2

            proto = pb2.ModelProto.FromString(sp.serialized_model_proto())  # type: ignore[attr-defined]
            if proto.normalizer_spec.add_dummy_prefix:
                proto.normalizer_spec.add_dummy_prefix = False
                sp.LoadFromSerializedProto(proto.SerializeToString())
        self._sp = sp
        self.lower = bool(config.get("do_lower_case", True))
        self.unk = _token_name(config.get("unk_token")) or "<unk>"
        self.eos_id = sp.piece_to_id(_token_name(config.get("eos_token")) or "</s>")
        self.pad_id = sp.piece_to_id(_token_name(config.get("pad_token")) or "</s>")
        self._unk_len = len(sp.encode(self.unk, out_type=str))
        self._punct = str.maketrans("", "", string.punctuation)

    def _ids(self, text: str) -> list[int]:
        text = "\u2581" + text.replace("\u2581", " ")
        if self.lower:
            text = text.lower()
        text = re.sub(r"\s+", " ", text.translate(self._punct)).strip()
        pieces = self._sp.encode(self.unk + text, out_type=str)
        pieces = pieces[self._unk_len :] if len(pieces) >= self._unk_len else pieces
        ids = [self._sp.piece_to_id(p) for p in pieces]
        if not ids or ids[-1] != self.eos_id:
            ids.append(self.eos_id)
        return ids

    def tokenize(self, texts: Sequence[Any], *, truncate: bool = True) -> list[Tokens | InputError]:
        out: list[Tokens | InputError] = []
        for text in texts:
            try:
                ids = self._ids(check_text(text))
            except InputError as exc:
                out.append(exc)
                continue
            over = len(ids) > self.cfg.context_length
            if over:
                if not truncate:
                    out.append(_too_long(text, len(ids), self.cfg))
                    continue
                ids = ids[: self.cfg.context_length - 1] + [self.eos_id]
            out.append(Tokens(ids, truncated=over))
        return out


def _convert_with_transformers(root: Path) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"{root} has no tokenizer.json; converting its tokenizer files needs transformers "
            "(pip install 'crossmodal[torch]'), or use a repo that ships tokenizer.json"
        ) from exc
    try:
        tok = AutoTokenizer.from_pretrained(str(root))
    except Exception as exc:
        raise ModelLoadError(f"cannot load the tokenizer in {root}: {exc}") from exc
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ModelLoadError(f"the tokenizer in {root} has no fast (tokenizers) form")
    return backend


def load_tokenizer(root: Path, cfg: TextPreprocess) -> Tokenizer:
    """The tokenizer of the model directory ``root``, configured by ``cfg``."""
    config = read_json(root / "tokenizer_config.json") if (root / "tokenizer_config.json").is_file() else {}
    pad = _pad_token(root, cfg)
    if cfg.tokenizer == "sentencepiece" and (root / "spiece.model").is_file() and not (root / "tokenizer.json").is_file():
        return SentencePieceTokenizer(root / "spiece.model", cfg, config)
    if (root / "tokenizer.json").is_file():
        return FastTokenizer.from_file(root / "tokenizer.json", cfg, pad)
    if any((root / f).is_file() for f in ("vocab.json", "vocab.txt")):
        return FastTokenizer(_convert_with_transformers(root), cfg, pad)
    raise ModelLoadError(f"{root} has no tokenizer files (tokenizer.json, vocab.json + merges.txt, vocab.txt or spiece.model)")
