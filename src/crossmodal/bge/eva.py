"""The EVA02-CLIP vision tower of Visualized-BGE, as plain torch modules.

What Visualized-BGE runs in eval mode (EVA02-CLIP-B-16 with bge-base-en-v1.5,
EVA02-CLIP-L-14 with bge-m3): a patch convolution, a CLS token and absolute
position embeddings, then pre-LayerNorm blocks with

* attention: separate q/k/v projections, a bias on q and v only, 2-D rotary
  position embeddings on the patch tokens (not CLS) of q and k, a LayerNorm on
  the attention output before its projection ("sub-LN");
* SwiGLU feed-forward: ``w3(LN(silu(w1 x) * w2 x))``.

All LayerNorms use eps 1e-6. Patch dropout is a training-time augmentation and
is never applied. The output is the last block's tokens: the checkpoint's final
``norm`` and ``head`` are never used by Visualized-BGE.

The real checkpoints carry no architecture config, so :meth:`EvaConfig.from_state_dict`
reads it from the tensors: width (CLS token), patch size and grid (patch
convolution, position table), depth (number of blocks), head width (rotary
table), feed-forward width (``w1``). The rotary cos/sin tables themselves are
taken from the checkpoint, as the reference does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ModelLoadError
from .checkpoint import count_indexed

__all__ = ["EvaConfig", "EvaVision", "eva_to_local"]

EPS = 1e-6


@dataclass(frozen=True)
class EvaConfig:
    width: int
    depth: int
    head_dim: int
    mlp_width: int
    patch_size: int
    grid: int

    @property
    def heads(self) -> int:
        return self.width // self.head_dim

    @property
    def image_size(self) -> int:
        return self.patch_size * self.grid

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], source: str) -> EvaConfig:
        """The architecture of the EVA tower whose tensors (without their prefix) are ``state``."""
        try:
            width = int(state["cls_token"].shape[-1])
            conv = state["patch_embed.proj.weight"]
            tokens = int(state["pos_embed"].shape[1])
            head_dim = int(state["rope.freqs_cos"].shape[-1])
            mlp_width = int(state["blocks.0.mlp.w1.weight"].shape[0])
        except KeyError as exc:
            raise ModelLoadError(
                f"{source} has no EVA02 vision tower tensor {exc.args[0]!r}; is it a Visualized-BGE checkpoint?"
            ) from exc
        for marker, what in (("blocks.0.gamma_1", "layer scale"), ("blocks.0.attn.qkv.weight", "fused qkv"),
                             ("blocks.0.mlp.fc1.weight", "a GELU MLP"), ("rel_pos_bias.relative_position_bias_table",
                                                                       "relative position bias")):
            if marker in state:
                raise ModelLoadError(f"{source}: this EVA variant ({what}) is not one Visualized-BGE uses")
        grid = math.isqrt(tokens - 1)
        if grid * grid != tokens - 1 or conv.shape[-1] != conv.shape[-2]:
            raise ModelLoadError(f"{source}: the EVA position table ({tokens} tokens) is not a square grid plus CLS")
        depth = count_indexed(state, "blocks.")
        if depth == 0 or width % head_dim:
            raise ModelLoadError(f"{source}: cannot read the EVA depth / head width from the checkpoint")
        return cls(width=width, depth=depth, head_dim=head_dim, mlp_width=mlp_width,
                   patch_size=int(conv.shape[-1]), grid=grid)


def _rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...): the rotation of interleaved pairs."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


class EvaAttention(nn.Module):
    def __init__(self, cfg: EvaConfig) -> None:
        super().__init__()
        w = cfg.width
        self.heads = cfg.heads
        self.scale = cfg.head_dim ** -0.5
        self.q_proj = nn.Linear(w, w, bias=False)
        self.k_proj = nn.Linear(w, w, bias=False)
        self.v_proj = nn.Linear(w, w, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(w))
        self.v_bias = nn.Parameter(torch.zeros(w))
        self.inner_norm = nn.LayerNorm(w, eps=EPS)
        self.proj = nn.Linear(w, w)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, -1).transpose(1, 2)

        q = split(F.linear(x, self.q_proj.weight, self.q_bias))
        k = split(self.k_proj(x))
        v = split(F.linear(x, self.v_proj.weight, self.v_bias))
        # Rotary positions on the patch tokens only; CLS (token 0) keeps its q and k.
        q = torch.cat((q[:, :, :1], q[:, :, 1:] * cos + _rotate_pairs(q[:, :, 1:]) * sin), dim=2)
        k = torch.cat((k[:, :, :1], k[:, :, 1:] * cos + _rotate_pairs(k[:, :, 1:]) * sin), dim=2)
        attn = torch.softmax(torch.matmul(q * self.scale, k.transpose(-1, -2)), dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, -1)
        return self.proj(self.inner_norm(out))


class SwiGLU(nn.Module):
    def __init__(self, cfg: EvaConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.width, cfg.mlp_width)
        self.w2 = nn.Linear(cfg.width, cfg.mlp_width)
        self.norm = nn.LayerNorm(cfg.mlp_width, eps=EPS)
        self.w3 = nn.Linear(cfg.mlp_width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(self.norm(F.silu(self.w1(x)) * self.w2(x)))


class EvaBlock(nn.Module):
    def __init__(self, cfg: EvaConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=EPS)
        self.attn = EvaAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width, eps=EPS)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class EvaVision(nn.Module):
    """pixel_values (B, 3, S, S) -> the last block's tokens (B, 1 + patches, width), CLS first."""

    def __init__(self, cfg: EvaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, cfg.width))
        self.register_buffer("rope_cos", torch.zeros(cfg.num_patches, cfg.head_dim))
        self.register_buffer("rope_sin", torch.zeros(cfg.num_patches, cfg.head_dim))
        self.blocks = nn.ModuleList(EvaBlock(cfg) for _ in range(cfg.depth))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)
        return x


_BLOCK_NAMES = {
    "attn.inner_attn_ln": "attn.inner_norm",
    "mlp.ffn_ln": "mlp.norm",
}


def eva_to_local(name: str) -> str | None:
    """A checkpoint name under ``model_visual.visual.`` -> this module's name (None: not used here)."""
    if name.startswith("patch_embed.proj."):
        return "patch." + name[len("patch_embed.proj."):]
    if name in ("cls_token", "pos_embed"):
        return name
    if name in ("rope.freqs_cos", "rope.freqs_sin"):
        return "rope_" + name.rsplit("_", 1)[1]
    if name.startswith("blocks."):
        _, index, rest = name.split(".", 2)
        if rest.startswith("attn.rope."):
            return None  # the same table as the tower's rope.freqs_*; checked by the loader
        for old, new in _BLOCK_NAMES.items():
            if rest.startswith(old + "."):
                rest = new + rest[len(old):]
        return f"blocks.{index}.{rest}"
    return None
