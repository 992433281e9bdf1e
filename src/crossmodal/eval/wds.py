"""CLIP_benchmark's ``wds/`` layout, read with the standard library's :mod:`tarfile`.

::

    ROOT/
      test/nshards.txt        N
      test/0.tar ... N-1.tar  samples: KEY.webp|png|jpg|jpeg, and KEY.txt (captions, one per line) or KEY.cls (a label)
      classnames.txt          one class name per line (label order)
      zeroshot_classification_templates.txt   one template per line, with {c}
      dataset_type.txt        retrieval, multilabel, or absent (classification)

A sample is the run of consecutive members sharing a key (the member name up
to the first dot of its base name), as webdataset groups them. ``ROOT`` may
also be a split folder itself (one holding ``nshards.txt``).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .datasets import ClassificationDataset, RetrievalDataset, TarMember, _read_text, load_classnames, load_templates

__all__ = ["is_wds", "load_classification", "load_retrieval"]

IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")


@dataclass
class _Sample:
    key: str
    shard: Path
    members: dict[str, str] = field(default_factory=dict)  # extension -> member name
    data: dict[str, bytes] = field(default_factory=dict)  # small text members, read while scanning

    @property
    def where(self) -> str:
        return f"{self.shard}: sample {self.key!r}"

    def image(self) -> TarMember:
        for ext in IMAGE_EXTENSIONS:
            if ext in self.members:
                return TarMember(self.shard, self.members[ext])
        raise ConfigError(f"{self.where} has no image (.{', .'.join(IMAGE_EXTENSIONS)})")

    def text(self, ext: str) -> str:
        try:
            return self.data[ext].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self.where}: .{ext} is not UTF-8 text") from exc


def is_wds(path: Path) -> bool:
    return (path / "nshards.txt").is_file() or any((d / "nshards.txt").is_file() for d in path.iterdir() if d.is_dir())


def _split_dir(root: Path, split: str) -> tuple[Path, Path]:
    """(dataset root, split folder)."""
    if (root / "nshards.txt").is_file():
        return root.parent, root
    folder = root / split
    if (folder / "nshards.txt").is_file():
        return root, folder
    splits = sorted(d.name for d in root.iterdir() if (d / "nshards.txt").is_file())
    if splits:
        raise ConfigError(f"{root} has no split {split!r} (splits: {', '.join(splits)})")
    raise ConfigError(f"{root} is not a CLIP_benchmark wds/ folder: no {split}/nshards.txt")


def _shards(folder: Path) -> list[Path]:
    text = _read_text(folder / "nshards.txt", "shard count").strip()
    try:
        n = int(text)
    except ValueError as exc:
        raise ConfigError(f"{folder / 'nshards.txt'}: expected a number of shards, found {text[:40]!r}") from exc
    if n < 1:
        raise ConfigError(f"{folder / 'nshards.txt'}: {n} shards")
    shards = [folder / f"{i}.tar" for i in range(n)]
    for s in shards:
        if not s.is_file():
            raise ConfigError(f"{folder / 'nshards.txt'} says {n} shards, but {s} does not exist")
    return shards


def _split_name(name: str) -> tuple[str, str] | None:
    """webdataset's key and extension: the name up to the first dot of its base name, and the rest (lowercase)."""
    head, slash, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem:
        return None
    return head + slash + stem, ext.lower()


def _samples(shards: Sequence[Path], read: tuple[str, ...]) -> Iterator[_Sample]:
    for shard in shards:
        try:
            with tarfile.open(shard, mode="r:*") as tar:
                current: _Sample | None = None
                for info in tar:
                    if not info.isfile():
                        continue
                    parts = _split_name(info.name)
                    if parts is None:
                        continue
                    key, ext = parts
                    if current is None or current.key != key:
                        if current is not None:
                            yield current
                        current = _Sample(key, shard)
                    current.members[ext] = info.name
                    if ext in read:
                        handle = tar.extractfile(info)
                        current.data[ext] = handle.read() if handle is not None else b""
                if current is not None:
                    yield current
        except (OSError, tarfile.TarError) as exc:
            raise ConfigError(f"{shard}: not a readable tar shard: {exc}") from exc


def _dataset_type(root: Path) -> str:
    path = root / "dataset_type.txt"
    return _read_text(path, "dataset type").strip().lower() if path.is_file() else "classification"


def load_retrieval(path: Path, *, split: str = "test", name: str | None = None) -> RetrievalDataset:
    root, folder = _split_dir(path, split)
    kind = _dataset_type(root)
    if kind != "retrieval" and (root / "dataset_type.txt").is_file():
        raise ConfigError(f"{root / 'dataset_type.txt'} says {kind!r}, not retrieval; use crossmodal eval zeroshot")
    images: list[TarMember] = []
    captions: list[str] = []
    owner: list[int] = []
    for sample in _samples(_shards(folder), read=("txt",)):
        if "txt" not in sample.members:
            raise ConfigError(f"{sample.where} has no .txt captions"
                              + (" (a classification sample? use crossmodal eval zeroshot)" if "cls" in sample.members
                                 else ""))
        lines = sample.text("txt").splitlines()
        if not lines:
            raise ConfigError(f"{sample.where}: empty .txt (no captions)")
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                raise ConfigError(f"{sample.where}: caption {n} of its .txt is empty")
            captions.append(line.strip())
            owner.append(len(images))
        images.append(sample.image())
    return RetrievalDataset(images, captions, np.asarray(owner, dtype=np.int64), name=name or f"wds/{root.name}",
                            source=str(folder), format="wds")


def load_classification(path: Path, *, split: str = "test", classnames: Sequence[str] | None = None,
                        name: str | None = None) -> ClassificationDataset:
    root, folder = _split_dir(path, split)
    kind = _dataset_type(root)
    if kind == "retrieval":
        raise ConfigError(f"{root / 'dataset_type.txt'} says retrieval; use crossmodal eval retrieval")
    if kind == "multilabel":
        raise ConfigError(f"{root}: multilabel datasets (mean average precision) are not supported")
    if classnames is None:
        if not (root / "classnames.txt").is_file():
            raise ConfigError(f"{root} has no classnames.txt; give the class names with --classnames FILE")
        classnames = load_classnames(root / "classnames.txt")
    templates_file = root / "zeroshot_classification_templates.txt"
    templates = load_templates(templates_file) if templates_file.is_file() else None
    images: list[TarMember] = []
    labels: list[int] = []
    for sample in _samples(_shards(folder), read=("cls",)):
        if "cls" not in sample.members:
            raise ConfigError(f"{sample.where} has no .cls label")
        text = sample.text("cls").strip()
        try:
            labels.append(int(text))
        except ValueError as exc:
            raise ConfigError(f"{sample.where}: .cls holds {text[:40]!r}, not an integer label") from exc
        images.append(sample.image())
    return ClassificationDataset(images, np.asarray(labels, dtype=np.int64), list(classnames),
                                 name=name or f"wds/{root.name}", source=str(folder), format="wds",
                                 templates=templates)
