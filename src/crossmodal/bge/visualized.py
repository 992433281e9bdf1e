"""Visualized-BGE: image, text and fused image+text vectors from one BGE text encoder.

What BAAI's ``Visualized_BGE`` computes in eval mode, batched:

* **text**: the BGE text model on the tokens (CLS pooling);
* **pair** (image + text): the EVA tokens without their CLS, projected by
  ``visual_proj``, plus the text position embeddings of positions ``1..N``, then
  the text embedding LayerNorm. The sequence is ``[CLS] + image tokens + text
  tokens[1:]`` with position ids ``0`` for CLS and ``N+1, N+2, ...`` for the
  text tokens, encoded by the text encoder, CLS pooled;
* **image**: the pair path with an empty text (``[CLS][SEP]``).

The modules return the raw CLS vector; the reference L2-normalizes it
(:func:`normalize`). A pair's text tokens must fit the text model's position
table after the image tokens: :attr:`VisualizedBGE.max_pair_tokens`.

:func:`load_visualized` reads a directory in the released layout: the
``Visualized_*.pth`` beside the BGE text model's ``config.json`` and tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError
from .checkpoint import count_indexed, load_strict, read_config, read_state_dict, strip_prefix
from .eva import EvaConfig, EvaVision, eva_to_local
from .text_encoder import TextConfig, TextEmbeddings, TextEncoder, hf_to_local, position_ids_for

__all__ = ["VisualizedBGE", "VisualizedConfig", "find_weights", "load_visualized", "normalize"]

VISUAL_PREFIX = "model_visual.visual."
#: tensors of the released checkpoint that Visualized-BGE loads but never applies
UNUSED = (r"bge_pooler\..*", r"model_visual\.logit_scale", r"model_visual\.visual\.(norm|head|fc_norm)\..*",
          r"bge_embeddings\.position_ids", r"bge_embeddings\.token_type_ids")


def normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


@dataclass(frozen=True)
class VisualizedConfig:
    text: TextConfig
    vision: EvaConfig

    @property
    def image_tokens(self) -> int:
        """How many image tokens a pair's sequence holds (the EVA patches; its CLS is dropped)."""
        return self.vision.num_patches

    @property
    def max_pair_tokens(self) -> int:
        """The most text tokens (special tokens included) a pair can carry.

        The text's last position id is ``N + T - 1`` for ``N`` image tokens and
        ``T`` text tokens; it must index the position table.
        """
        return self.text.max_positions - self.image_tokens

    @property
    def max_text_tokens(self) -> int:
        return self.text.max_tokens


class VisualizedBGE(nn.Module):
    def __init__(self, cfg: VisualizedConfig) -> None:
        super().__init__()
        if cfg.vision.width != cfg.text.hidden_size:
            raise ModelLoadError(
                f"the EVA width {cfg.vision.width} differs from the text model's hidden size {cfg.text.hidden_size}"
            )
        self.cfg = cfg
        self.embeddings = TextEmbeddings(cfg.text)
        self.encoder = TextEncoder(cfg.text)
        self.vision = EvaVision(cfg.vision)
        self.visual_proj = nn.Linear(cfg.text.hidden_size, cfg.text.hidden_size)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw CLS vectors (B, hidden) of tokenized texts."""
        x = self.embeddings(input_ids, position_ids_for(input_ids, self.cfg.text))
        return self.encoder(x, attention_mask)[:, 0]

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image's tokens in the text embedding space (B, N, hidden), LayerNorm applied."""
        tokens = self.visual_proj(self.vision(pixel_values)[:, 1:])
        n = tokens.shape[1]
        positions = torch.arange(1, n + 1, dtype=torch.int64, device=tokens.device)
        return self.embeddings.norm(tokens + self.embeddings.position(positions))

    def encode_pair(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw CLS vectors (B, hidden) of images fused with their texts (one text per image)."""
        image = self.image_tokens(pixel_values)
        n, length = image.shape[1], input_ids.shape[1]
        positions = torch.cat((
            torch.zeros(1, dtype=torch.int64, device=input_ids.device),
            torch.arange(n + 1, n + length, dtype=torch.int64, device=input_ids.device),
        )).unsqueeze(0).expand_as(input_ids)
        text = self.embeddings(input_ids, positions)
        sequence = torch.cat((text[:, :1], image, text[:, 1:]), dim=1)
        image_mask = torch.ones(image.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device)
        mask = torch.cat((attention_mask[:, :1], image_mask, attention_mask[:, 1:]), dim=1)
        return self.encoder(sequence, mask)[:, 0]


def find_weights(root: Path) -> Path:
    """The one ``Visualized_*.pth`` in ``root``."""
    found = sorted(root.glob("Visualized_*.pth"))
    if len(found) != 1:
        what = "no Visualized_*.pth" if not found else f"{len(found)} Visualized_*.pth files ({', '.join(p.name for p in found)})"
        raise ModelLoadError(f"{root} holds {what}; expected one, beside the BGE model's config.json and tokenizer")
    return found[0]


def _rename(key: str) -> str | None:
    if key.startswith(VISUAL_PREFIX):
        local = eva_to_local(key[len(VISUAL_PREFIX):])
        return f"vision.{local}" if local else None
    if key.startswith("visual_proj."):
        return key
    return hf_to_local(key, embeddings="bge_embeddings.", encoder="bge_encoder.")


def _check_rope_tables(state: dict, source: str) -> None:
    cos, sin = state[VISUAL_PREFIX + "rope.freqs_cos"], state[VISUAL_PREFIX + "rope.freqs_sin"]
    for key, value in state.items():
        if key.startswith(VISUAL_PREFIX + "blocks.") and ".attn.rope.freqs_" in key:
            if not torch.equal(value, cos if key.endswith("cos") else sin):
                raise ModelLoadError(f"{source}: {key} differs from the tower's rotary table")


def load_visualized(root: str | Path, weights: str | Path | None = None) -> VisualizedBGE:
    """The Visualized-BGE in directory ``root``, in eval mode."""
    root = Path(root).expanduser()
    path = Path(weights) if weights is not None else find_weights(root)
    text_cfg = TextConfig.from_json(read_config(root / "config.json"))
    state = read_state_dict(path)
    layers = count_indexed(state, "bge_encoder.layer.")
    if layers != text_cfg.num_layers:
        raise ModelLoadError(f"{path} has {layers} text encoder layers, {root / 'config.json'} says {text_cfg.num_layers}")
    vision_cfg = EvaConfig.from_state_dict(strip_prefix(state, VISUAL_PREFIX), str(path))
    _check_rope_tables(state, str(path))
    model = VisualizedBGE(VisualizedConfig(text=text_cfg, vision=vision_cfg))
    load_strict(model, state, _rename, source=str(path),
                ignore=(*UNUSED, r"model_visual\.visual\.blocks\.\d+\.attn\.rope\.freqs_(cos|sin)"))
    return model.eval()
