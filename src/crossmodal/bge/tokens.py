"""Texts -> padded token ids for the BGE text models, with the ``tokenizers`` library only.

A BGE model directory ships ``tokenizer.json`` (WordPiece for bge-base-en-v1.5,
the XLM-R SentencePiece unigram for bge-m3); its template adds the model's
start and end tokens. Over-long texts keep their start and end tokens and lose
tokens from the end of the text, as transformers' ``truncation=True`` does;
``truncate=False`` raises :class:`TextTooLong` naming the text instead. Batches
are padded to the longest text with the model's pad id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmptyText, InputError, ModelLoadError, TextTooLong

__all__ = ["BgeTokenizer", "SpecialTokens", "TokenBatch"]

_SPECIAL_NAMES = ("cls_token", "eos_token", "sep_token", "pad_token", "unk_token")


@dataclass(frozen=True)
class SpecialTokens:
    """The ids of the special tokens the model's tokenizer declares (None when it declares none)."""

    cls: int | None
    eos: int | None
    sep: int | None
    pad: int
    unk: int | None

    @property
    def lexical_exclusions(self) -> frozenset[int]:
        """Ids BGE-M3 never gives a lexical weight: the start, end, padding and unknown tokens."""
        return frozenset(i for i in (self.cls, self.eos, self.pad, self.unk) if i is not None)


@dataclass(frozen=True)
class TokenBatch:
    input_ids: np.ndarray  # (B, L) int64, padded with the pad id
    attention_mask: np.ndarray  # (B, L) int64, 1 for real tokens

    @property
    def lengths(self) -> np.ndarray:
        return self.attention_mask.sum(axis=1)


def _token_content(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _declared_specials(root: Path) -> dict[str, str]:
    names: dict[str, str] = {}
    for file in ("special_tokens_map.json", "tokenizer_config.json"):
        path = root / file
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {path}: {exc}") from exc
        for name in _SPECIAL_NAMES:
            token = _token_content(data.get(name))
            if token and name not in names:
                names[name] = token
    return names


def _preview(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


class BgeTokenizer:
    def __init__(self, backend: Any, specials: SpecialTokens, source: str) -> None:
        backend.no_padding()
        backend.no_truncation()
        self._backend = backend
        self.specials = specials
        self.source = source

    @classmethod
    def from_dir(cls, root: str | Path) -> BgeTokenizer:
        from tokenizers import Tokenizer

        root = Path(root)
        path = root / "tokenizer.json"
        if not path.is_file():
            raise ModelLoadError(f"{root} has no tokenizer.json (the BGE model's fast tokenizer file)")
        try:
            backend = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises plain Exceptions
            raise ModelLoadError(f"cannot read tokenizer {path}: {exc}") from exc
        declared = _declared_specials(root)

        def token_id(name: str) -> int | None:
            token = declared.get(name)
            if token is None:
                return None
            found = backend.token_to_id(token)
            if found is None:
                raise ModelLoadError(f"{path}: the {name} {token!r} is not in the vocabulary")
            return int(found)

        pad = token_id("pad_token")
        if pad is None:
            raise ModelLoadError(f"{root} declares no pad_token (special_tokens_map.json / tokenizer_config.json)")
        specials = SpecialTokens(cls=token_id("cls_token"), eos=token_id("eos_token"), sep=token_id("sep_token"),
                                 pad=pad, unk=token_id("unk_token"))
        return cls(backend, specials, str(root))

    @property
    def vocab_size(self) -> int:
        """How many token ids there are (special tokens included)."""
        return int(self._backend.get_vocab_size(with_added_tokens=True))

    def ids(self, text: str) -> list[int]:
        """The token ids of one text, special tokens included, never truncated."""
        return list(self._backend.encode(text).ids)

    def tokenize(self, texts: Sequence[Any], *, max_tokens: int, truncate: bool = True) -> list[list[int] | InputError]:
        """Token ids per text (at most ``max_tokens``, special tokens included), or that text's error."""
        out: list[list[int] | InputError] = []
        good: list[int] = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                out.append(InputError(f"texts must be str, got {type(text).__name__}", input=repr(text)[:60]))
            elif not text.strip():
                out.append(EmptyText(f"empty text {text!r}: there is nothing to embed", input=text))
            else:
                good.append(i)
                out.append([])
        encodings = self._backend.encode_batch([texts[i] for i in good]) if good else []
        for i, enc in zip(good, encodings):
            ids = list(enc.ids)
            if len(ids) > max_tokens:
                if not truncate:
                    out[i] = TextTooLong(
                        f"text {_preview(texts[i])} has {len(ids)} tokens, over the {max_tokens} this input can hold; "
                        "pass truncate=True to cut it", input=texts[i])
                    continue
                # Keep the start and end tokens, as transformers' truncation does around its template.
                ids = ids[: max_tokens - 1] + ids[-1:]
            out[i] = ids
        return out

    def pad(self, rows: Sequence[Sequence[int]]) -> TokenBatch:
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.specials.pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return TokenBatch(ids, mask)

    def encode(self, texts: Sequence[Any], *, max_tokens: int, truncate: bool = True) -> TokenBatch:
        """Tokenize and pad ``texts``, raising the first bad text's error (with its position)."""
        rows = self.tokenize(texts, max_tokens=max_tokens, truncate=truncate)
        for i, row in enumerate(rows):
            if isinstance(row, InputError):
                raise row.at(i)
        return self.pad(rows)  # type: ignore[arg-type]
