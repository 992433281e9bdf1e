"""Train a tiny CLIP in under a minute on generated shapes (see :mod:`.shapes`).

The result is an ordinary transformers-layout CLIP (its inputs come from
transformers' own processor) that crossmodal then loads like any other.

Training is bit-reproducible on a machine: every random draw comes from
``seed``, and it runs on a fixed number of torch threads (1 by default, which
is also the fastest on a busy machine) with deterministic algorithms, so neither
the core count nor the load changes the model's bytes. Another CPU's kernels
(AVX2, AVX-512) round differently, and training amplifies rounding: in float32
such a difference moved the trained model's scores by up to 0.1. So the model is
initialized and trained in float64 and saved in float32: then the scores moved by
less than 1e-6 (``python -m tests.testing.spread`` measures this).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .models import TINY_TEXT, TINY_VISION, build_model
from .shapes import COLORS, SHAPES, caption, render

__all__ = ["PICTURE_SIZES", "TrainOptions", "import_torch", "shape_captions", "train_tiny_clip"]

# The sides the training pictures are drawn at before the processor shrinks them to 32x32: the model's own, and those
# the tests and the demo draw at, so that the model knows the edges that shrinking each of them leaves.
PICTURE_SIZES = (32, 64, 96, 128)
VISION_WIDTH = 64  # twice the tiny text tower's: telling circles from squares is the hard part
LOGIT_SCALE = 20.0


@dataclass(frozen=True)
class TrainOptions:
    """How the tiny CLIP is trained: ``steps`` batches of ``per_caption`` pictures of each of the 12 captions,
    drawn from a pool of ``pool_per_caption`` pictures each; the learning rate warms up to ``lr`` over
    ``warmup`` steps, then decays to zero along a cosine. ``threads``: torch threads to train on (the model
    bytes depend on it)."""

    steps: int = 400
    per_caption: int = 8
    pool_per_caption: int = 250
    lr: float = 3e-3
    warmup: int = 30
    threads: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if not 1 <= self.per_caption <= self.pool_per_caption:
            raise ValueError(f"per_caption must be between 1 and pool_per_caption, got {self.per_caption}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.lr <= 0 or self.warmup < 0:
            raise ValueError(f"lr must be positive and warmup not negative, got {self.lr}, {self.warmup}")


def train_tiny_clip(
    out: str | Path,
    *,
    seed: int = 0,
    bpe: bytes | None = None,
    options: TrainOptions = TrainOptions(),
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Build a tiny CLIP in ``out``, train it contrastively on shapes, and save it there (float32).

    ``progress(step, steps)`` is called after each step. Torch's thread count, deterministic-algorithms
    setting, default dtype and global random state are as before when this returns.
    """
    torch = import_torch()
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    from ..runtimes.torch import quiet_transformers

    out = Path(out)
    with _reproducible(torch, options.threads):
        config = CLIPConfig(
            text_config={**TINY_TEXT, "vocab_size": 49408, "max_position_embeddings": 77,
                         "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407},
            vision_config={**TINY_VISION, "hidden_size": VISION_WIDTH, "intermediate_size": 2 * VISION_WIDTH},
            projection_dim=24,
        )
        torch.manual_seed(seed)
        with quiet_transformers():
            model = CLIPModel(config)  # float64 (see _reproducible), initial weights included
            build_model(out, family="clip", size="tiny", bpe=bpe, model=model)  # tokenizer and processor files
            processor = CLIPProcessor.from_pretrained(str(out))
        captions = shape_captions()
        text_inputs = processor(text=captions, padding=True, return_tensors="pt")
        rng = np.random.default_rng(seed)
        n, k = options.pool_per_caption, options.per_caption
        pool = [picture for c, s in _caption_pairs() for picture in _pictures(c, s, n, rng)]
        pixels = processor(images=pool, return_tensors="pt")["pixel_values"].double()
        # 49408 token rows, of which the captions use a dozen: their random start tells the tokens apart, and
        # updating all of them would be half of each step's time.
        model.text_model.embeddings.token_embedding.weight.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=options.lr, weight_decay=0.0, foreach=True)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: _lr_factor(step, options))
        labels = torch.arange(len(captions)).repeat_interleave(k)
        # Each caption's k pictures in the batch are its positives, equally.
        caption_targets = torch.nn.functional.one_hot(labels, len(captions)).T.double() / k
        model.train()
        for step in range(options.steps):
            # The pool is grouped by caption: pictures [c * n, (c + 1) * n) show caption c.
            idx = np.concatenate([c * n + rng.choice(n, size=k, replace=False) for c in range(len(captions))])
            batch = _augment(torch, pixels[torch.from_numpy(idx)], rng, k)
            img = torch.nn.functional.normalize(_features(model.get_image_features(pixel_values=batch)), dim=-1)
            txt = torch.nn.functional.normalize(_features(model.get_text_features(**text_inputs)), dim=-1)
            logits = img @ txt.T * LOGIT_SCALE
            # Symmetric: each picture among the 12 captions, and each caption among the batch's pictures.
            loss = (torch.nn.functional.cross_entropy(logits, labels)
                    + torch.nn.functional.cross_entropy(logits.T, caption_targets)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(step + 1, options.steps)
        model = model.eval().float()
        with quiet_transformers():
            model.save_pretrained(str(out), safe_serialization=True)
    return out


def import_torch() -> Any:
    """torch, or :class:`~crossmodal.errors.RuntimeUnavailable` naming the extra that brings it."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        from ..errors import RuntimeUnavailable

        raise RuntimeUnavailable(
            "training the tiny CLIP needs PyTorch and transformers: pip install 'crossmodal[torch]'"
        ) from exc
    return torch


def shape_captions() -> list[str]:
    return [caption(c, s) for c, s in _caption_pairs()]


def _caption_pairs() -> list[tuple[str, str]]:
    return [(c, s) for c in COLORS for s in SHAPES]


def _pictures(color: str, shape: str, n: int, rng: np.random.Generator) -> list[Image.Image]:
    """``n`` pictures of one caption, each at a random place and scale, drawn at a side from PICTURE_SIZES."""
    sizes = rng.choice(PICTURE_SIZES, size=n)
    return [render(color, shape, size=int(size), rng=rng) for size in sizes]


def _augment(torch: Any, pixels: Any, rng: np.random.Generator, k: int) -> Any:
    """Mirror each picture or not; turn circles and squares (not triangles, which point up) by 0-3 quarter turns.

    The pictures come ``k`` per caption, in caption order; every result is a picture its caption still describes.
    """
    out = pixels.clone()
    mirror = torch.from_numpy(rng.random(len(out)) < 0.5)
    out[mirror] = out[mirror].flip(-1)
    turns = rng.integers(4, size=len(out))
    for i, turn in enumerate(turns):
        if turn and SHAPES[(i // k) % len(SHAPES)] != "triangle":
            out[i] = torch.rot90(out[i], int(turn), dims=(-2, -1))
    return out


def _lr_factor(step: int, options: TrainOptions) -> float:
    """Linear warmup, then a cosine decay to zero."""
    if step < options.warmup:
        return (step + 1) / options.warmup
    t = (step - options.warmup) / max(1, options.steps - options.warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _features(out: Any) -> Any:
    return getattr(out, "pooler_output", out)


@contextmanager
def _reproducible(torch: Any, threads: int) -> Iterator[None]:
    """``threads`` torch threads, deterministic algorithms, float64 by default and a private global RNG.

    Everything is restored afterwards, the caller's random state included.
    """
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_default_dtype())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float64)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_default_dtype(before[3])
        torch.use_deterministic_algorithms(before[1], warn_only=before[2])
        torch.set_num_threads(before[0])
