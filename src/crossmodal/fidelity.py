"""How far a precision mode strays from ``exact``: per-item cosine and retrieval agreement.

``fast`` (int8 weights, DCT-domain JPEG downscaling) must keep every image and
caption vector within cosine 0.99 of its ``exact`` vector, and must rank
nearly the same neighbours: the top-10 of a query agrees with ``exact``'s in
at least 90% of places on average. The report also gives retrieval agreement:
recall@k of ``fast`` against ``exact`` (the share of queries whose best match
under ``exact`` is in ``fast``'s top k), for k = 1, 5, 10. :func:`compare_modes` measures this on any
images and captions; :func:`verify_model` loads both modes of one model and
runs it, on a generated picture set unless you pass your own photos
(``crossmodal models verify NAME --mode fast --images DIR``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["AGREEMENT_KS", "MIN_COSINE", "MIN_OVERLAP", "FidelityReport", "agreement_recall", "compare_modes",
           "images_in", "synthetic_corpus", "topk_overlap", "verify_model"]

MIN_COSINE = 0.99
MIN_OVERLAP = 0.9
AGREEMENT_KS = (1, 5, 10)


@dataclass(frozen=True)
class FidelityReport:
    """Agreement of ``mode`` with ``reference_mode`` on ``images`` images and ``texts`` captions."""

    model: str
    mode: str
    reference_mode: str
    images: int
    texts: int
    image_cosine_min: float
    image_cosine_mean: float
    text_cosine_min: float
    text_cosine_mean: float
    k: int
    text_to_image_overlap: float  # mean top-k agreement, each caption querying the images
    image_to_image_overlap: float  # mean top-k agreement, each image querying the others
    worst_image: str
    worst_text: str
    min_cosine: float = MIN_COSINE
    min_overlap: float = MIN_OVERLAP
    #: "recall@k": share of queries whose exact best match is in the mode's top k (captions -> images)
    text_to_image_recall: dict[str, float] = field(default_factory=dict)
    image_to_image_recall: dict[str, float] = field(default_factory=dict)  # images -> the other images

    @property
    def passed(self) -> bool:
        return (
            min(self.image_cosine_min, self.text_cosine_min) >= self.min_cosine
            and min(self.text_to_image_overlap, self.image_to_image_overlap) >= self.min_overlap
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def lines(self) -> list[str]:
        ok = "PASS" if self.passed else "FAIL"
        return [
            f"{self.model}: {self.mode} vs {self.reference_mode} on {self.images} images and {self.texts} captions: {ok}",
            f"  image cosine  min {self.image_cosine_min:.5f}  mean {self.image_cosine_mean:.5f}  "
            f"(bound >= {self.min_cosine}; worst: {self.worst_image})",
            f"  text cosine   min {self.text_cosine_min:.5f}  mean {self.text_cosine_mean:.5f}  "
            f"(bound >= {self.min_cosine}; worst: {self.worst_text})",
            f"  top-{self.k} overlap  text->image {self.text_to_image_overlap:.3f}  "
            f"image->image {self.image_to_image_overlap:.3f}  (bound >= {self.min_overlap})",
            *self._agreement_lines(),
        ]

    def _agreement_lines(self) -> list[str]:
        if not self.text_to_image_recall:
            return []
        ks = "/".join(key.removeprefix("recall@") for key in self.text_to_image_recall)
        t2i = "/".join(f"{v:.3f}" for v in self.text_to_image_recall.values())
        i2i = "/".join(f"{v:.3f}" for v in self.image_to_image_recall.values())
        return [f"  retrieval agreement (exact's best match in {self.mode}'s top-{ks})  text->image {t2i}  "
                f"image->image {i2i}"]


def topk_overlap(reference: np.ndarray, candidate: np.ndarray, k: int) -> float:
    """Mean over rows of |top-k(reference row) & top-k(candidate row)| / k, for two score matrices."""
    if reference.shape != candidate.shape:
        raise ValueError(f"score matrices differ in shape: {reference.shape} vs {candidate.shape}")
    k = min(k, reference.shape[1])
    if k < 1 or reference.shape[0] == 0:
        return 1.0
    ref = np.argpartition(-reference, k - 1, axis=1)[:, :k]
    cand = np.argpartition(-candidate, k - 1, axis=1)[:, :k]
    # One division of whole counts: a mean of per-row fractions can land just below a bound it meets exactly.
    shared = sum(len(np.intersect1d(a, b)) for a, b in zip(ref, cand))
    return shared / (len(ref) * k)


def agreement_recall(reference: np.ndarray, candidate: np.ndarray, ks: Sequence[int] = AGREEMENT_KS) -> dict[str, float]:
    """recall@k of ``candidate`` against ``reference`` (two score matrices, one row per query): the share of rows
    whose best column under ``reference`` ranks in ``candidate``'s top k (ties: the first column ranks first)."""
    from .eval.metrics import recall_at_k

    if reference.shape != candidate.shape:
        raise ValueError(f"score matrices differ in shape: {reference.shape} vs {candidate.shape}")
    if reference.shape[0] == 0:
        return {f"recall@{k}": 1.0 for k in ks}
    best = np.argmax(reference, axis=1)
    target = candidate[np.arange(len(best)), best][:, None]
    before = np.arange(candidate.shape[1])[None, :] < best[:, None]
    ranks = np.count_nonzero((candidate > target) | ((candidate == target) & before), axis=1)
    return {f"recall@{k}": recall_at_k(ranks, k) for k in ks if k <= candidate.shape[1]}


def _name(item: Any) -> str:
    from .preprocessing.images import describe_input

    return describe_input(item)


def compare_modes(reference: Any, candidate: Any, images: Sequence[Any], texts: Sequence[str], *, k: int = 10) -> FidelityReport:
    """Embed ``images`` and ``texts`` with both models and measure how far ``candidate`` strays."""
    if len(images) < 2 or not texts:
        raise ConfigError("verifying a mode needs at least 2 images and 1 caption")
    if candidate.dim != reference.dim:
        raise ConfigError(f"the two models differ in dim ({reference.dim} vs {candidate.dim})")
    ref_img, cand_img = reference.embed_images(images), candidate.embed_images(images)
    ref_txt, cand_txt = reference.embed_texts(texts), candidate.embed_texts(texts)
    img_cos = np.sum(ref_img * cand_img, axis=1)
    txt_cos = np.sum(ref_txt * cand_txt, axis=1)
    k = min(k, len(images) - 1)
    ref_ti, cand_ti = ref_txt @ ref_img.T, cand_txt @ cand_img.T
    t2i = topk_overlap(ref_ti, cand_ti, k)
    # Image queries against the other images: a query's own row is pushed to the bottom.
    ref_ii, cand_ii = ref_img @ ref_img.T, cand_img @ cand_img.T
    np.fill_diagonal(ref_ii, -np.inf)
    np.fill_diagonal(cand_ii, -np.inf)
    i2i = topk_overlap(ref_ii, cand_ii, k)
    others = len(images) - 1  # an image query's candidates are the other images
    return FidelityReport(
        model=candidate.name,
        mode=candidate.mode,
        reference_mode=reference.mode,
        images=len(images),
        texts=len(texts),
        image_cosine_min=float(img_cos.min()),
        image_cosine_mean=float(img_cos.mean()),
        text_cosine_min=float(txt_cos.min()),
        text_cosine_mean=float(txt_cos.mean()),
        k=k,
        text_to_image_overlap=t2i,
        image_to_image_overlap=i2i,
        worst_image=_name(images[int(img_cos.argmin())]),
        worst_text=repr(texts[int(txt_cos.argmin())]),
        text_to_image_recall=agreement_recall(ref_ti, cand_ti),
        image_to_image_recall=agreement_recall(ref_ii, cand_ii, [x for x in AGREEMENT_KS if x <= others]),
    )


def synthetic_corpus(n_images: int = 200, n_texts: int = 100, *, seed: int = 0) -> tuple[list[Any], list[str]]:
    """Generated pictures (1-3 coloured shapes on smooth coloured backgrounds, 256x192) and captions.

    A stand-in when no photos are given; real photos (``--images``) give the figure that matters.
    """
    from PIL import Image, ImageDraw

    from .testing.shapes import COLORS, SHAPES, caption

    rng = np.random.default_rng(seed)
    names = list(COLORS)
    images = []
    for _ in range(n_images):
        field = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
        img = Image.fromarray(field).resize((256, 192), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 4))):
            color = COLORS[names[int(rng.integers(len(names)))]]
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            r = float(rng.uniform(15, 60))
            cx, cy = float(rng.uniform(r, 256 - r)), float(rng.uniform(r, 192 - r))
            if shape == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
            elif shape == "square":
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=color)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
        images.append(np.asarray(img))
    texts = []
    extras = ("on a white background", "in the corner", "next to a small square", "drawn with a thick pen",
              "in a photo of a room", "on a wooden table", "floating over the sea")
    for i in range(n_texts):
        base = caption(names[int(rng.integers(len(names)))], SHAPES[int(rng.integers(len(SHAPES)))])
        texts.append(base if i % 3 == 0 else f"{base} {extras[int(rng.integers(len(extras)))]}")
    return images, texts


def images_in(path: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``path`` (a directory, searched recursively, or one file)."""
    root = Path(path).expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ConfigError(f"no such file or directory: {root}")
    from PIL import Image

    Image.init()
    suffixes = set(Image.registered_extensions())  # every format Pillow can open here
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not found:
        raise ConfigError(f"no images under {root}")
    return found


def verify_model(
    name: str | os.PathLike[str],
    *,
    mode: str = "fast",
    images: Sequence[Any] | None = None,
    texts: Sequence[str] | None = None,
    k: int = 10,
    **load_kwargs: Any,
) -> FidelityReport:
    """Load ``name`` in ``exact`` and in ``mode`` and compare them (see :func:`compare_modes`)."""
    from .loader import load_model

    reference = load_model(name, mode="exact", **load_kwargs)
    candidate = load_model(name, mode=mode, **load_kwargs)  # type: ignore[arg-type]
    if images is None or texts is None:
        default_images, default_texts = synthetic_corpus()
        images = default_images if images is None else images
        texts = default_texts if texts is None else texts
    return compare_modes(reference, candidate, list(images), list(texts), k=k)
