"""BGE-M3: one XLM-RoBERTa pass, three outputs (dense, sparse lexical, ColBERT).

The module returns the raw per-text tensors the three outputs are made of, as
BAAI's ``BGEM3FlagModel`` computes them in eval mode:

* ``cls``: ``last_hidden_state[:, 0]`` (the dense vector before truncation and
  normalization; not the pooler output);
* ``token_weights``: ``relu(sparse_linear(h))`` for every position (B, L);
* ``colbert``: ``colbert_linear(h[:, 1:])`` times the attention mask (B, L-1, C).

:mod:`.m3_outputs` turns them into the user-facing outputs with numpy, so the
torch and ONNX paths share that code. :func:`load_m3` reads a directory in the
released layout (an XLM-RoBERTa model plus ``colbert_linear.pt`` and
``sparse_linear.pt``). Without both head files the model still gives the dense
output, and asking it for the sparse or ColBERT output is an error naming the
missing file (BAAI's code silently initializes both heads at random instead).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError
from .checkpoint import count_indexed, load_strict, read_config, read_state_dict
from .text_encoder import TextConfig, TextEmbeddings, TextEncoder, hf_to_local, position_ids_for

__all__ = ["COLBERT_FILE", "SPARSE_FILE", "M3Model", "load_m3"]

COLBERT_FILE = "colbert_linear.pt"
SPARSE_FILE = "sparse_linear.pt"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_UNUSED = (r"pooler\..*", r"embeddings\.position_ids", r"embeddings\.token_type_ids")


class M3Model(nn.Module):
    def __init__(self, cfg: TextConfig, colbert_dim: int | None, missing_heads: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.cfg = cfg
        self.missing_heads = missing_heads if colbert_dim is None else ()
        self.embeddings = TextEmbeddings(cfg)
        self.encoder = TextEncoder(cfg)
        self.colbert_linear = nn.Linear(cfg.hidden_size, colbert_dim) if colbert_dim else None
        self.sparse_linear = nn.Linear(cfg.hidden_size, 1) if colbert_dim else None

    @property
    def has_heads(self) -> bool:
        return self.colbert_linear is not None

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids, position_ids_for(input_ids, self.cfg))
        return self.encoder(x, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(cls,) without the heads; (cls, token_weights, colbert) with them."""
        h = self.hidden_states(input_ids, attention_mask)
        if self.colbert_linear is None or self.sparse_linear is None:
            return (h[:, 0],)
        token_weights = torch.relu(self.sparse_linear(h)).squeeze(-1)
        colbert = self.colbert_linear(h[:, 1:]) * attention_mask[:, 1:, None].to(h.dtype)
        return h[:, 0], token_weights, colbert


def _model_weights(root: Path) -> Path:
    for name in _WEIGHT_FILES:
        if (root / name).is_file():
            return root / name
    raise ModelLoadError(f"{root} has no model weights ({' or '.join(_WEIGHT_FILES)})")


def _strip_model_prefix(state: dict) -> dict:
    # Some exports keep the task model's prefix (``roberta.embeddings...``).
    if not any(k.startswith("embeddings.") for k in state):
        for prefix in ("roberta.", "model."):
            if any(k.startswith(prefix + "embeddings.") for k in state):
                return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _linear_state(path: Path, in_features: int) -> dict:
    state = read_state_dict(path)
    weight = state.get("weight")
    if set(state) != {"weight", "bias"} or weight is None or weight.ndim != 2 or weight.shape[1] != in_features:
        raise ModelLoadError(f"{path} is not a Linear({in_features}, n) state dict (weight, bias)")
    return state


def load_m3(root: str | Path, *, heads: bool = True) -> M3Model:
    """The BGE-M3 in directory ``root``, in eval mode; ``heads=False`` skips the head files even if present."""
    root = Path(root).expanduser()
    cfg = TextConfig.from_json(read_config(root / "config.json"))
    if cfg.model_type != "xlm-roberta":
        raise ModelLoadError(f"{root} is a {cfg.model_type!r} model; BGE-M3 is an XLM-RoBERTa model")
    path = _model_weights(root)
    state = _strip_model_prefix(read_state_dict(path))
    layers = count_indexed(state, "encoder.layer.")
    if layers != cfg.num_layers:
        raise ModelLoadError(f"{path} has {layers} encoder layers, its config.json says {cfg.num_layers}")
    colbert_dim = None
    missing = tuple(name for name in (COLBERT_FILE, SPARSE_FILE) if not heads or not (root / name).is_file())
    if not missing:
        colbert = _linear_state(root / COLBERT_FILE, cfg.hidden_size)
        sparse = _linear_state(root / SPARSE_FILE, cfg.hidden_size)
        if sparse["weight"].shape[0] != 1:
            raise ModelLoadError(f"{root / SPARSE_FILE} must map to one weight per token, not {sparse['weight'].shape[0]}")
        colbert_dim = int(colbert["weight"].shape[0])
        state = {**state, **{f"colbert_linear.{k}": v for k, v in colbert.items()},
                 **{f"sparse_linear.{k}": v for k, v in sparse.items()}}
    model = M3Model(cfg, colbert_dim, missing)

    def rename(key: str) -> str | None:
        if key.startswith(("colbert_linear.", "sparse_linear.")):
            return key
        return hf_to_local(key, embeddings="embeddings.", encoder="encoder.")

    load_strict(model, state, rename, source=str(path), ignore=_UNUSED)
    return model.eval()
