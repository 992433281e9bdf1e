"""Train a tiny CLIP for a few seconds on generated shapes (see :mod:`.shapes`).

The training uses transformers' own processor for inputs so the trained model
is an ordinary transformers-layout CLIP that crossmodal then loads like any
other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .models import build_model
from .shapes import COLORS, SHAPES, caption, samples

__all__ = ["shape_captions", "train_tiny_clip"]


def train_tiny_clip(
    out: str | Path, *, steps: int = 300, batch: int = 48, seed: int = 0, bpe: bytes | None = None, picture_size: int = 32
) -> Path:
    """Build a tiny CLIP in ``out``, train it contrastively on shapes, and save it in place.

    ``picture_size`` is the side the training pictures are drawn at before the model's processor resizes
    them: draw them at the size the model will later see pictures at, so that it learns those edges.
    """
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from ..runtimes.torch import quiet_transformers

    out = Path(out)
    build_model(out, family="clip", size="tiny", seed=seed, bpe=bpe)
    with quiet_transformers():
        model = CLIPModel.from_pretrained(str(out))
        processor = CLIPProcessor.from_pretrained(str(out))
    torch.manual_seed(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    captions = shape_captions()
    text_inputs = processor(text=captions, padding=True, return_tensors="pt")
    # Pre-render a pool of pictures; each step draws a batch from it.
    pool = samples(1200, seed=seed, size=picture_size)
    pixels = processor(images=[p for p, _ in pool], return_tensors="pt")["pixel_values"]
    labels = torch.tensor([captions.index(c) for _, c in pool])
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(len(pool), size=batch, replace=False))
        img = model.get_image_features(pixel_values=pixels[idx])
        img = getattr(img, "pooler_output", img)
        txt = model.get_text_features(**text_inputs)
        txt = getattr(txt, "pooler_output", txt)
        img = torch.nn.functional.normalize(img, dim=-1)
        txt = torch.nn.functional.normalize(txt, dim=-1)
        # Classify each picture among all captions, and each present caption among the batch's pictures.
        logits = img @ txt.T * 20.0
        loss = torch.nn.functional.cross_entropy(logits, labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with quiet_transformers():
        model.save_pretrained(str(out), safe_serialization=True)
    return out


def shape_captions() -> list[str]:
    return [caption(c, s) for c in COLORS for s in SHAPES]
