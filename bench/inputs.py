"""Benchmark inputs: distinct real-photo JPEGs and short captions, generated deterministically.

Photos come from ``../shared/data/images`` (plus scikit-image's and
scikit-learn's sample photos when those packages are installed). Near
duplicates (the same photo in several formats) are dropped by a thumbnail
hash. Each source photo then yields several distinct JPEGs: a different crop
window (60-100% of the area, 4:3 or 3:4), sometimes mirrored, resized to
500x375 (or 375x500) and saved at quality 90, so every file is real photo
content, no two files are equal, and all are about the size of a web photo.

Captions are short English sentences built from templates and a vocabulary of
photo subjects (plus the real captions in ``captions.tsv``), 5 to 20 tokens
long, all distinct.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMAGES = ROOT.parent / "shared" / "data" / "images"
_SKIP_SUFFIXES = (".tsv", ".md", ".txt")

SUBJECTS = (
    "cat", "black cat", "tabby cat", "kitten", "dog", "two dogs", "puppy", "horse", "bee", "parrot", "magpie",
    "duck", "kookaburra", "astronaut", "rocket", "motorcycle", "red motorcycle", "camera", "camera lens",
    "cup of coffee", "birthday cake", "stack of books", "chess queen", "chess knight", "chessboard", "tree",
    "boat", "sailboat", "eiffel tower", "lighthouse", "bicycle", "old car", "street market", "mountain lake",
)
PLACES = (
    "on a chair", "in the snow", "at night", "on a lake", "in a garden", "on a wooden table", "in the city",
    "on the beach", "in a garage", "under a blue sky", "next to a window", "in the rain", "at sunset",
    "in a forest", "on a white background", "in a kitchen", "on a busy street", "near the river",
)
STYLES = (
    "a photo of a {s}", "a close-up photo of a {s}", "a blurry photo of a {s} {p}", "a {s} {p}",
    "a black-and-white photo of a {s} {p}", "a bright photo of a {s} {p}", "a picture of a {s} {p}, taken from above",
    "an old photograph showing a {s} {p}", "a small {s} {p}", "a large {s} sitting {p}",
    "my favourite photo of a {s} {p} last summer", "a {s} and another {s} {p}",
)


def source_photos(extra: bool = True) -> list[Image.Image]:
    """Distinct real photos (RGB), from ../shared and, if installed, scikit-image / scikit-learn samples."""
    photos: list[Image.Image] = []
    for path in sorted(SHARED_IMAGES.rglob("*")):
        if not path.is_file() or path.suffix.lower() in _SKIP_SUFFIXES:
            continue
        with Image.open(path) as img:
            img.seek(0)
            photos.append(ImageOps.exif_transpose(img).convert("RGB"))
    if extra:
        photos += _package_photos()
    out, seen = [], []
    for photo in photos:
        if min(photo.size) < 128:
            continue
        thumb = np.asarray(photo.convert("L").resize((16, 16), Image.Resampling.BOX), dtype=np.float32)
        thumb = (thumb - thumb.mean()) / (thumb.std() + 1e-6)
        if any(float((thumb * t).mean()) > 0.9 for t in seen):  # the same photo in another format
            continue
        seen.append(thumb)
        out.append(photo)
    return out


def _package_photos() -> list[Image.Image]:
    photos = []
    try:
        from sklearn.datasets import load_sample_images

        photos += [Image.fromarray(a) for a in load_sample_images().images]
    except Exception:  # not installed: the shared photos are enough
        pass
    try:
        import skimage.data as sd

        for name in ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_right", "cat", "immunohistochemistry"):
            try:
                arr = getattr(sd, name)()
            except Exception:  # some need a download
                continue
            if isinstance(arr, tuple):
                arr = arr[0]
            if arr.ndim == 3 and arr.shape[2] == 3:
                photos.append(Image.fromarray(arr))
    except Exception:
        pass
    return photos


def _variant(photo: Image.Image, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = photo.size
    portrait = rng.random() < 0.25
    aspect = 3 / 4 if portrait else 4 / 3
    area = rng.uniform(0.6, 1.0) * w * h
    cw = min(w, int(round((area * aspect) ** 0.5)))
    ch = min(h, int(round(cw / aspect)))
    cw = min(cw, int(round(ch * aspect)))
    left = int(rng.integers(0, w - cw + 1))
    top = int(rng.integers(0, h - ch + 1))
    crop = photo.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    target = (size[1], size[0]) if portrait else size
    return crop.resize(target, Image.Resampling.LANCZOS)


def make_images(out: Path, n: int = 200, *, size: tuple[int, int] = (500, 375), seed: int = 0) -> list[Path]:
    """``n`` distinct JPEGs of real photo content in ``out`` (reused when already there)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"photo_{i:04d}.jpg" for i in range(n)]
    if all(p.is_file() for p in paths):
        return paths
    photos = source_photos()
    rng = np.random.default_rng(seed)
    digests = set()
    for i, path in enumerate(paths):
        while True:
            img = _variant(photos[i % len(photos)], rng, size)
            digest = hashlib.sha256(img.tobytes()).hexdigest()
            if digest not in digests:
                digests.add(digest)
                break
        img.save(path, "JPEG", quality=90)
    return paths


def make_captions(n: int = 2000, *, seed: int = 0) -> list[str]:
    """``n`` distinct short captions (real ones from captions.tsv first)."""
    captions: list[str] = []
    seen: set[str] = set()
    tsv = SHARED_IMAGES / "captioned" / "captions.tsv"
    if tsv.is_file():
        for line in tsv.read_text(encoding="utf-8").splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1].strip() and parts[1].strip() not in seen:
                seen.add(parts[1].strip())
                captions.append(parts[1].strip())
    rng = np.random.default_rng(seed)
    while len(captions) < n:
        style = STYLES[rng.integers(len(STYLES))]
        text = style.format(s=SUBJECTS[rng.integers(len(SUBJECTS))], p=PLACES[rng.integers(len(PLACES))])
        if text not in seen:
            seen.add(text)
            captions.append(text)
    return captions[:n]
