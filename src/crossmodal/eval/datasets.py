"""Evaluation datasets as data: retrieval (images and their captions) and classification (images and labels).

:mod:`crossmodal.eval.loading` reads them from disk in every supported format.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = [
    "IMAGENET_TEMPLATES",
    "ClassificationDataset",
    "ImageRef",
    "RetrievalDataset",
    "TarMember",
    "iter_image_inputs",
    "load_classnames",
    "load_templates",
]


@dataclass(frozen=True)
class TarMember:
    """An image stored inside a tar shard."""

    shard: Path
    member: str

    def __str__(self) -> str:
        return f"{self.shard}:{self.member}"


#: where a dataset's image is: a file, a tar member, or anything ``Model.embed_images`` takes
ImageRef = Any


def describe(image: ImageRef) -> str:
    if isinstance(image, (str, os.PathLike, TarMember)):
        return str(image)
    return f"<{type(image).__name__}>"


@dataclass(frozen=True, eq=False)
class RetrievalDataset:
    """Images and their captions: ``caption_image[j]`` is the index of caption ``j``'s image."""

    images: Sequence[ImageRef]
    captions: Sequence[str]
    caption_image: np.ndarray
    name: str = "dataset"
    source: str = ""
    format: str = "memory"

    def __post_init__(self) -> None:
        index = np.asarray(self.caption_image, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "caption_image", index)
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "captions", tuple(self.captions))
        if len(index) != len(self.captions):
            raise ConfigError(f"{self.label}: {len(self.captions)} captions but {len(index)} caption_image entries")
        if not self.images:
            raise ConfigError(f"{self.label}: no images")
        if len(index) and (index.min() < 0 or index.max() >= len(self.images)):
            raise ConfigError(f"{self.label}: caption_image points outside the {len(self.images)} images")
        for j, c in enumerate(self.captions):
            if not isinstance(c, str) or not c.strip():
                raise ConfigError(f"{self.label}: caption #{j} is empty")
        without = np.setdiff1d(np.arange(len(self.images)), index)
        if len(without):
            raise ConfigError(f"{self.label}: image {describe(self.images[int(without[0])])} has no caption "
                              f"({len(without)} image(s) without captions)")

    @property
    def label(self) -> str:
        return self.source or self.name

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[ImageRef, str]], *, name: str = "dataset", source: str = "",
                   format: str = "memory") -> RetrievalDataset:  # noqa: A002
        """(image, caption) pairs; pairs naming the same file (or the same object) share one image."""
        images: list[ImageRef] = []
        seen: dict[Any, int] = {}
        captions: list[str] = []
        owner: list[int] = []
        for image, text in pairs:
            key = _image_key(image)
            if key not in seen:
                seen[key] = len(images)
                images.append(image)
            captions.append(text)
            owner.append(seen[key])
        return cls(images, captions, np.asarray(owner, dtype=np.int64), name=name, source=source, format=format)

    def captions_of(self, image: int) -> list[str]:
        return [self.captions[int(j)] for j in np.flatnonzero(self.caption_image == image)]


@dataclass(frozen=True, eq=False)
class ClassificationDataset:
    """Labelled images: ``labels[i]`` indexes ``classnames``. ``templates`` is the dataset's own prompt set, if any."""

    images: Sequence[ImageRef]
    labels: np.ndarray
    classnames: Sequence[str]
    name: str = "dataset"
    source: str = ""
    format: str = "memory"
    templates: Sequence[str] | None = field(default=None)

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "classnames", tuple(self.classnames))
        label = self.source or self.name
        if len(labels) != len(self.images):
            raise ConfigError(f"{label}: {len(self.images)} images but {len(labels)} labels")
        if not self.images:
            raise ConfigError(f"{label}: no images")
        if not self.classnames:
            raise ConfigError(f"{label}: no classes")
        if labels.min() < 0 or labels.max() >= len(self.classnames):
            bad = int(np.flatnonzero((labels < 0) | (labels >= len(self.classnames)))[0])
            raise ConfigError(f"{label}: image {describe(self.images[bad])} has label {int(labels[bad])}, outside "
                              f"the {len(self.classnames)} classes")
        for n, c in enumerate(self.classnames):
            if not isinstance(c, str) or not c.strip():
                raise ConfigError(f"{label}: class #{n} has an empty name")


def _image_key(image: ImageRef) -> Any:
    if isinstance(image, (str, os.PathLike)):
        return ("path", os.path.abspath(os.fspath(image)))
    if isinstance(image, TarMember):
        return ("tar", image)
    return ("object", id(image))


def iter_image_inputs(images: Iterable[ImageRef]) -> Iterator[Any]:
    """What ``Model.embed_images`` takes for each image: paths as they are, tar members as their bytes."""
    open_shard: tuple[Path, tarfile.TarFile] | None = None
    try:
        for image in images:
            if not isinstance(image, TarMember):
                yield image
                continue
            if open_shard is None or open_shard[0] != image.shard:
                if open_shard is not None:
                    open_shard[1].close()
                open_shard = (image.shard, _open_tar(image.shard))
            try:
                handle = open_shard[1].extractfile(image.member)
            except KeyError as exc:
                raise ConfigError(f"{image.shard}: no member {image.member!r}") from exc
            if handle is None:
                raise ConfigError(f"{image}: not a regular file")
            yield handle.read()
    finally:
        if open_shard is not None:
            open_shard[1].close()


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:*")
    except (OSError, tarfile.TarError) as exc:
        raise ConfigError(f"{path}: not a readable tar shard: {exc}") from exc


# -- templates and class names --------------------------------------------------------------------------------------

def _data_lines(name: str) -> tuple[str, ...]:
    text = resources.files("crossmodal.eval").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line.strip())


#: CLIP's 80 ImageNet prompts ("a bad photo of a {c}.", ...), CLIP_benchmark's default template set
IMAGENET_TEMPLATES: tuple[str, ...] = _data_lines("imagenet_templates.txt")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc


def load_templates(path: str | os.PathLike[str]) -> list[str]:
    """One prompt template per line, with ``{c}`` where the class name goes (blank lines are skipped)."""
    p = Path(path).expanduser()
    templates = []
    for n, line in enumerate(_read_text(p, "templates file").splitlines(), start=1):
        if not line.strip():
            continue
        if "{c}" not in line:
            raise ConfigError(f"{p}:{n}: template {line.strip()!r} has no {{c}} where the class name goes")
        templates.append(line.strip())
    if not templates:
        raise ConfigError(f"{p}: no templates")
    return templates


def load_classnames(path: str | os.PathLike[str]) -> list[str]:
    """One class name per line, in label order (trailing blank lines are ignored, blank lines between are not)."""
    p = Path(path).expanduser()
    lines = _read_text(p, "class names file").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            raise ConfigError(f"{p}:{n}: empty class name")
    if not lines:
        raise ConfigError(f"{p}: no class names")
    return [line.strip() for line in lines]


def fill(template: str, classname: str) -> str:
    """A template with its ``{c}`` replaced (other braces are left alone)."""
    return template.replace("{c}", classname)


# -- loaders ----------------------------------------------------------------------------------------------------------
