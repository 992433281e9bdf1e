"""Generated captioned and labelled shape pictures, and writers for every dataset format the evaluation reads.

Each writer writes the same data (the same images, in the same order, with the same captions), so every format
must give the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossmodal.testing.shapes import COLORS, SHAPES, render

PREFIXES = ("", "a photo of ", "a drawing of ")


@dataclass(frozen=True)
class ShapeSet:
    """Pictures under ``root`` (relative paths ``images``) with their captions, and a class label per picture."""

    root: Path
    images: list[str]
    captions: list[list[str]]
    labels: list[int]
    classnames: list[str]

    def paths(self) -> list[Path]:
        return [self.root / p for p in self.images]

    def flat(self) -> tuple[list[str], np.ndarray]:
        texts = [c for cs in self.captions for c in cs]
        owner = np.asarray([i for i, cs in enumerate(self.captions) for _ in cs], dtype=np.int64)
        return texts, owner


def make_shape_set(root: Path, *, per_class: int = 2, seed: int = 0) -> ShapeSet:
    """``per_class`` pictures of each colour and shape (32 px, as the tiny model was trained), 1-3 unique captions
    each; some captions hold commas."""
    rng = np.random.default_rng(seed)
    (root / "pictures").mkdir(parents=True, exist_ok=True)
    images, captions, labels, classnames = [], [], [], []
    for color in COLORS:
        for shape in SHAPES:
            classnames.append(f"{color} {shape}")
    i = 0
    for copy in range(per_class):
        for label, name in enumerate(classnames):
            color, shape = name.split()
            rel = f"pictures/{color}_{shape}_{copy}.png"
            render(color, shape, size=32, rng=rng).save(root / rel)
            images.append(rel)
            captions.append([f"{PREFIXES[n]}a {color} {shape}, picture {i}" for n in range(1 + i % 3)])
            labels.append(label)
            i += 1
    return ShapeSet(root, images, captions, labels, classnames)


def write_csv(s: ShapeSet, path: Path) -> Path:
    """Karpathy-style: raw captions after the first comma (as CLIP_benchmark's Flickr files) on even rows, quoted
    CSV fields on odd rows."""
    lines = ["image,caption"]
    n = 0
    for image, caps in zip(s.images, s.captions):
        rel = (s.root / image).relative_to(path.parent).as_posix()
        for c in caps:
            if n % 2:
                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow([rel, c])
                lines.append(buf.getvalue())
            else:
                lines.append(f"{rel},{c}")
            n += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_tsv(s: ShapeSet, path: Path) -> Path:
    rows = ["file\tcaption\tsource"]
    for image, caps in zip(s.images, s.captions):
        rows += [f"{(s.root / image).relative_to(path.parent).as_posix()}\t{c}\tgenerated" for c in caps]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_coco(s: ShapeSet, path: Path) -> Path:
    """COCO captions: ids in image order but listed shuffled, annotations interleaved across images."""
    order = np.random.default_rng(1).permutation(len(s.images))
    images = [{"id": 100 + int(i), "file_name": s.images[int(i)]} for i in order]
    anns = []
    depth = max(len(c) for c in s.captions)
    for n in range(depth):  # every image's first caption, then every second caption, ...
        for i, caps in enumerate(s.captions):
            if n < len(caps):
                anns.append({"id": len(anns), "image_id": 100 + i, "caption": caps[n]})
    path.write_text(json.dumps({"images": images, "annotations": anns}), encoding="utf-8")
    return path


def write_karpathy(s: ShapeSet, path: Path) -> Path:
    """Karpathy's dataset JSON with the test split, plus train images that must be left out."""
    images = []
    for n, (image, caps) in enumerate(zip(s.images, s.captions)):
        folder, _, name = image.rpartition("/")
        images.append({"filepath": folder, "filename": name, "split": "test", "imgid": n,
                       "sentences": [{"raw": c, "tokens": c.split()} for c in caps]})
        if n % 5 == 0:
            images.append({"filepath": folder, "filename": name, "split": "train",
                           "sentences": [{"raw": "a training caption"}]})
    path.write_text(json.dumps({"dataset": "shapes", "images": images}), encoding="utf-8")
    return path


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_wds(s: ShapeSet, root: Path, *, task: str = "retrieval", shards: int = 2) -> Path:
    """CLIP_benchmark's wds/ layout: test/nshards.txt, test/0.tar ..., samples s0000000.png + .txt or .cls."""
    (root / "test").mkdir(parents=True, exist_ok=True)
    per = -(-len(s.images) // shards)
    for k in range(shards):
        with tarfile.open(root / "test" / f"{k}.tar", "w") as tar:
            for i in range(k * per, min(len(s.images), (k + 1) * per)):
                key = f"s{i:07d}"
                _add(tar, f"{key}.png", (s.root / s.images[i]).read_bytes())
                if task == "retrieval":
                    _add(tar, f"{key}.txt", "\n".join(s.captions[i]).encode())
                else:
                    _add(tar, f"{key}.cls", str(s.labels[i]).encode())
    (root / "test" / "nshards.txt").write_text(f"{shards}\n")
    if task == "retrieval":
        (root / "dataset_type.txt").write_text("retrieval\n")
    else:
        (root / "classnames.txt").write_text("\n".join(s.classnames) + "\n")
    return root


def write_class_folders(s: ShapeSet, root: Path) -> Path:
    """One folder per class, named with underscores (read back as spaces)."""
    for image, label in zip(s.images, s.labels):
        folder = root / s.classnames[label].replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / Path(image).name).write_bytes((s.root / image).read_bytes())
    return root
