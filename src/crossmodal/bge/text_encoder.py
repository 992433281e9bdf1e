"""The BERT / XLM-RoBERTa text encoder of BGE models, as plain torch modules.

One encoder serves both BGE text models; they differ only in data:

* ``bert`` (bge-base-en-v1.5): position ids ``0..L-1``, two token types;
* ``xlm-roberta`` (bge-m3): position ids count the non-padding tokens from
  ``pad_token_id + 1`` (padding keeps ``pad_token_id``), as RoBERTa does.

Attention is the textbook post-LayerNorm encoder (softmax(QK^T/sqrt(d) + mask)V,
residual, LayerNorm; GELU feed-forward), with padded keys masked additively by
the float32 minimum, which gives them exactly zero weight. The parameter names
are crossmodal's own; :func:`hf_to_local` maps the Hugging Face checkpoint
names onto them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ModelLoadError

__all__ = ["TextConfig", "TextEmbeddings", "TextEncoder", "hf_to_local", "position_ids_for"]

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "relu": F.relu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}
_MODEL_TYPES = ("bert", "xlm-roberta")


@dataclass(frozen=True)
class TextConfig:
    """What decides the text encoder's shapes and arithmetic, read from the model's ``config.json``."""

    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_act: str
    pad_token_id: int

    def __post_init__(self) -> None:
        if self.model_type not in _MODEL_TYPES:
            raise ModelLoadError(f"unsupported text model type {self.model_type!r}; expected one of {_MODEL_TYPES}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ModelLoadError(f"unsupported activation {self.hidden_act!r}; expected one of {sorted(_ACTIVATIONS)}")
        if self.hidden_size % self.num_heads:
            raise ModelLoadError(f"hidden size {self.hidden_size} is not a multiple of {self.num_heads} heads")

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> TextConfig:
        try:
            return cls(
                model_type=str(config["model_type"]),
                vocab_size=int(config["vocab_size"]),
                hidden_size=int(config["hidden_size"]),
                num_layers=int(config["num_hidden_layers"]),
                num_heads=int(config["num_attention_heads"]),
                intermediate_size=int(config["intermediate_size"]),
                max_positions=int(config["max_position_embeddings"]),
                type_vocab_size=int(config.get("type_vocab_size", 2)),
                layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
                hidden_act=str(config.get("hidden_act", "gelu")),
                pad_token_id=int(config.get("pad_token_id", 0 if config["model_type"] == "bert" else 1)),
            )
        except KeyError as exc:
            raise ModelLoadError(f"the text model config lacks {exc.args[0]!r}") from exc

    @property
    def first_position(self) -> int:
        """The position id of a sequence's first token (RoBERTa skips the ids up to the padding id)."""
        return self.pad_token_id + 1 if self.model_type == "xlm-roberta" else 0

    @property
    def max_tokens(self) -> int:
        """The longest token sequence the position table can hold (special tokens included)."""
        return self.max_positions - self.first_position


def position_ids_for(input_ids: torch.Tensor, cfg: TextConfig) -> torch.Tensor:
    """The position ids BERT / RoBERTa derive from ``input_ids`` when none are given."""
    if cfg.model_type == "xlm-roberta":
        real = (input_ids != cfg.pad_token_id).to(torch.int64)
        return torch.cumsum(real, dim=1) * real + cfg.pad_token_id
    length = input_ids.shape[1]
    return torch.arange(length, dtype=torch.int64, device=input_ids.device).unsqueeze(0).expand_as(input_ids)


class TextEmbeddings(nn.Module):
    """Word + position + token type (0) embeddings, then LayerNorm."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden_size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        x = self.word(input_ids) + self.token_type.weight[0] + self.position(position_ids)
        return self.norm(x)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.heads = cfg.num_heads
        self.scale = 1.0 / math.sqrt(h // cfg.num_heads)
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(h, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, h)
        self.ffn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.act = _ACTIVATIONS[cfg.hidden_act]

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale + additive_mask
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        b, _, n, _ = context.shape
        context = context.transpose(1, 2).reshape(b, n, -1)
        x = self.attn_norm(x + self.attn_out(context))
        return self.ffn_norm(x + self.ffn_out(self.act(self.ffn_in(x))))


class TextEncoder(nn.Module):
    """The stack of encoder layers; ``forward`` takes embedded tokens and a 0/1 attention mask."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        keep = attention_mask.to(x.dtype)[:, None, None, :]
        additive = (1.0 - keep) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, additive)
        return x


_LAYER_NAMES = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "ffn_in",
    "output.dense": "ffn_out",
    "output.LayerNorm": "ffn_norm",
}
_EMBEDDING_NAMES = {
    "word_embeddings": "word",
    "position_embeddings": "position",
    "token_type_embeddings": "token_type",
    "LayerNorm": "norm",
}
_LAYER_KEY = re.compile(r"layer\.(\d+)\.(.+)\.(weight|bias)")


def hf_to_local(name: str, *, embeddings: str, encoder: str) -> str | None:
    """``embeddings.word_embeddings.weight`` -> ``embeddings.word.weight`` etc. (None: not a text tensor).

    ``embeddings`` and ``encoder`` are the checkpoint's prefixes for the two parts
    (``embeddings.``/``encoder.`` in a transformers model, ``bge_embeddings.``/``bge_encoder.``
    in a Visualized-BGE ``.pth``).
    """
    if name.startswith(embeddings):
        part, _, kind = name[len(embeddings):].rpartition(".")
        return f"embeddings.{_EMBEDDING_NAMES[part]}.{kind}" if part in _EMBEDDING_NAMES else None
    if name.startswith(encoder):
        match = _LAYER_KEY.fullmatch(name[len(encoder):])
        if match and match.group(2) in _LAYER_NAMES:
            return f"encoder.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}.{match.group(3)}"
    return None
