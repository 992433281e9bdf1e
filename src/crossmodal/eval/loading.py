"""Reading evaluation datasets from disk: captioned images (retrieval) and labelled images (zero-shot).

Retrieval formats (:func:`load_retrieval_dataset`), chosen by the path:

=====================  ==================================================================================
``*.csv``, ``*.txt``   Karpathy-style captions, as CLIP_benchmark's ``flickr30k_test_karpathy.txt``: an
                       ``image,caption`` header, then one ``path,caption`` row per caption (paths relative
                       to the file; an image has several rows)
``*.json``             COCO captions (``images[].id/file_name``, ``annotations[].image_id/caption``;
                       images in id order), or Karpathy's ``dataset_coco.json`` / ``dataset_flickr30k.json``
                       (``images[].filepath/filename/split/sentences[].raw``; ``split`` picks the split)
``*.tsv``              crossmodal's captions TSV (see :mod:`crossmodal.manifests`): ``file`` and
                       ``caption`` columns (or headerless: file, caption)
a folder               CLIP_benchmark's ``wds/`` layout: ``SPLIT/nshards.txt`` and ``SPLIT/0.tar`` ...,
                       one sample per image with its captions in ``.txt``, one per line
=====================  ==================================================================================

Zero-shot formats (:func:`load_classification_dataset`): a folder with one
sub-folder of images per class (classes in sorted folder order; a class's
name is its folder's name with underscores read as spaces, unless
``classnames`` gives one name per line), or a ``wds/`` folder whose samples
carry ``.cls`` labels, with ``classnames.txt`` beside the split folders.

A bad dataset (a missing image, an empty caption, a class folder without
images, a malformed row) raises :class:`~crossmodal.errors.ConfigError`
naming the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .datasets import ClassificationDataset, RetrievalDataset, load_classnames

__all__ = ["load_classification_dataset", "load_retrieval_dataset"]


def load_retrieval_dataset(
    path: str | os.PathLike[str],
    *,
    split: str | None = "test",
    image_root: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> RetrievalDataset:
    """Captioned images from a file or ``wds/`` folder (see the module docstring for the formats).

    ``split`` selects the split of Karpathy JSON files and ``wds/`` folders
    (None: every image of a Karpathy file). ``image_root`` is the folder image
    paths are relative to (default: the file's own folder; for COCO's
    ``coco_test_karpathy.json`` that is usually ``.../val2014``).
    """
    from . import captions, wds

    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"dataset {p} does not exist")
    root = Path(image_root).expanduser() if image_root is not None else None
    if p.is_dir():
        return wds.load_retrieval(p, split=split or "test", name=name)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".txt"):
        return captions.load_karpathy_csv(p, image_root=root, name=name)
    if suffix == ".tsv":
        return captions.load_captions_tsv(p, image_root=root, name=name)
    if suffix == ".json":
        return captions.load_json(p, image_root=root, split=split, name=name)
    raise ConfigError(f"dataset {p}: use a .csv/.txt (image,caption), .json (COCO or Karpathy), .tsv (crossmodal "
                      "captions) file or a CLIP_benchmark wds/ folder")


def _image_files(folder: Path) -> list[Path]:
    from PIL import Image

    Image.init()
    suffixes = set(Image.registered_extensions())
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def load_classification_dataset(
    path: str | os.PathLike[str],
    *,
    classnames: str | os.PathLike[str] | Sequence[str] | None = None,
    split: str = "test",
    name: str | None = None,
) -> ClassificationDataset:
    """Labelled images from a folder of class folders, or a ``wds/`` folder with ``.cls`` labels.

    ``classnames`` (a file with one name per line, or a list) names the classes
    in label order: sorted folder order for a folder of class folders.
    """
    from . import wds

    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(f"dataset {p} is not a folder; give a folder with one sub-folder of images per class "
                          "or a CLIP_benchmark wds/ folder")
    names = load_classnames(classnames) if isinstance(classnames, (str, os.PathLike)) else classnames
    if wds.is_wds(p):
        return wds.load_classification(p, split=split, classnames=names, name=name)
    folders = sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise ConfigError(f"dataset {p} has no class folders (one sub-folder of images per class)")
    images: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(folders):
        files = _image_files(folder)
        if not files:
            raise ConfigError(f"class folder {folder} holds no images")
        images += files
        labels += [label] * len(files)
    if names is None:
        names = [d.name.replace("_", " ") for d in folders]
    elif len(names) != len(folders):
        raise ConfigError(f"{len(names)} class names for the {len(folders)} class folders of {p} "
                          f"(one name per folder, in sorted folder order: {folders[0].name}, ...)")
    return ClassificationDataset(images, np.asarray(labels, dtype=np.int64), list(names), name=name or p.name,
                                 source=str(p), format="folders")
