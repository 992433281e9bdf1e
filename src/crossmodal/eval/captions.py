"""Caption files for retrieval: Karpathy-style CSV, COCO and Karpathy JSON, crossmodal's captions TSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .datasets import RetrievalDataset, _read_text

__all__ = ["load_captions_tsv", "load_json", "load_karpathy_csv"]

_IMAGE_HEADERS = ("image", "file", "path", "filename")
_CAPTION_HEADERS = ("caption", "text")


class _Resolver:
    """Image paths relative to a folder; a bare name not found there matches the one file of that name below it."""

    def __init__(self, file: Path, root: Path | None) -> None:
        self.file = file
        self.root = (root if root is not None else file.parent).absolute()
        self._by_name: dict[str, list[Path]] | None = None

    def __call__(self, name: str, where: str) -> Path:
        ref = name.strip().replace("\\", "/")
        path = Path(ref).expanduser()
        path = path if path.is_absolute() else self.root / path
        if path.is_file():
            return path
        if "/" not in ref:
            found = self._named(ref)
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ConfigError(f"{where}: image {ref!r} matches {len(found)} files under {self.root} "
                                  f"({found[0]}, {found[1]}, ...); give its path relative to {self.root}")
        raise ConfigError(f"{where}: image {ref!r} not found (looked for {path})")

    def _named(self, name: str) -> list[Path]:
        if self._by_name is None:
            self._by_name = {}
            for p in sorted(self.root.rglob("*")):
                if p.is_file():
                    self._by_name.setdefault(p.name, []).append(p)
        return self._by_name.get(name, [])


def _parse_field(text: str, where: str) -> list[str]:
    try:
        return next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration) as exc:
        raise ConfigError(f"{where}: malformed CSV: {exc}") from exc


def _csv_row(line: str, where: str) -> tuple[str, str]:
    """``image,caption``: the caption is the rest of the line (commas and all, as in CLIP_benchmark's Flickr files),
    unless it is one quoted CSV field; a path holding a comma is quoted."""
    if line.startswith('"'):
        fields = _parse_field(line, where)
        if len(fields) != 2:
            raise ConfigError(f"{where}: expected 2 fields (image,caption), found {len(fields)}")
        return fields[0], fields[1]
    image, comma, rest = line.partition(",")
    if not comma:
        raise ConfigError(f"{where}: expected image,caption, found no comma")
    rest = rest.strip()
    if len(rest) >= 2 and rest.startswith('"') and rest.endswith('"'):
        try:
            fields = next(csv.reader([rest], strict=True))
        except csv.Error:
            fields = [rest]
        if len(fields) == 1:
            rest = fields[0]
    return image, rest


def load_karpathy_csv(path: Path, *, image_root: Path | None = None, name: str | None = None) -> RetrievalDataset:
    """An ``image,caption`` header, then one ``path,caption`` row per caption."""
    lines = _read_text(path, "dataset").splitlines()
    if not lines:
        raise ConfigError(f"{path}: empty file; expected an image,caption header and one row per caption")
    header = [h.strip().lower() for h in _parse_field(lines[0].strip(), f"{path}:1")]
    if len(header) != 2 or header[0] not in _IMAGE_HEADERS or header[1] not in _CAPTION_HEADERS:
        raise ConfigError(f"{path}:1: expected the header line image,caption, found {lines[0][:80]!r}")
    resolve = _Resolver(path, image_root)
    pairs = []
    for n, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        where = f"{path}:{n}"
        image, caption = _csv_row(line, where)
        if not image.strip():
            raise ConfigError(f"{where}: no image path")
        if not caption.strip():
            raise ConfigError(f"{where}: empty caption for {image.strip()}")
        pairs.append((resolve(image, where), caption.strip()))
    if not pairs:
        raise ConfigError(f"{path}: no caption rows after the header")
    return RetrievalDataset.from_pairs(pairs, name=name or path.stem, source=str(path), format="karpathy-csv")


def load_captions_tsv(path: Path, *, image_root: Path | None = None, name: str | None = None) -> RetrievalDataset:
    """crossmodal's captions TSV: ``file`` and ``caption`` (or ``text``) columns, or headerless file, caption."""
    rows = []
    for n, raw in enumerate(_read_text(path, "dataset").splitlines(), start=1):
        if raw.strip():
            rows.append((n, next(csv.reader([raw], delimiter="\t"))))
    if not rows:
        raise ConfigError(f"{path}: empty file; expected file<TAB>caption rows")
    head = [h.strip().lower() for h in rows[0][1]]
    file_col, text_col = 0, 1
    if head[0] in _IMAGE_HEADERS:
        texts = [i for i, h in enumerate(head) if h in _CAPTION_HEADERS]
        if not texts:
            raise ConfigError(f"{path}:{rows[0][0]}: the header names no caption column (caption or text)")
        text_col = texts[0]
        rows = rows[1:]
    resolve = _Resolver(path, image_root)
    pairs = []
    for n, fields in rows:
        where = f"{path}:{n}"
        if len(fields) <= max(file_col, text_col):
            raise ConfigError(f"{where}: expected file<TAB>caption, found {len(fields)} column(s)")
        caption = fields[text_col].strip()
        if not caption:
            raise ConfigError(f"{where}: empty caption for {fields[file_col].strip()}")
        pairs.append((resolve(fields[file_col], where), caption))
    if not pairs:
        raise ConfigError(f"{path}: no caption rows")
    return RetrievalDataset.from_pairs(pairs, name=name or path.stem, source=str(path), format="captions-tsv")


def load_json(path: Path, *, image_root: Path | None = None, split: str | None = "test",
              name: str | None = None) -> RetrievalDataset:
    """COCO captions JSON (images sorted by id, captions in file order), or Karpathy's dataset JSON."""
    try:
        data = json.loads(_read_text(path, "dataset"))
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ConfigError(f"{path}: expected a COCO captions JSON (images and annotations) or a Karpathy dataset JSON "
                          "(images with sentences)")
    images = data["images"]
    if "annotations" in data:
        return _coco(path, data, image_root, name)
    if not all(isinstance(im, dict) and "sentences" in im for im in images):
        raise ConfigError(f"{path}: expected a COCO captions JSON (images and annotations) or a Karpathy dataset JSON "
                          "(every image with sentences)")
    return _karpathy(path, images, image_root, split, name)


def _coco(path: Path, data: dict[str, Any], image_root: Path | None, name: str | None) -> RetrievalDataset:
    resolve = _Resolver(path, image_root)
    files: dict[Any, str] = {}
    for n, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise ConfigError(f"{path}: images[{n}] needs an id and a file_name")
        if im["id"] in files:
            raise ConfigError(f"{path}: images[{n}]: image id {im['id']!r} appears twice")
        files[im["id"]] = im["file_name"]
    captions: dict[Any, list[str]] = {i: [] for i in files}
    for n, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{n}]"
        if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
            raise ConfigError(f"{where} needs an image_id and a caption")
        if ann["image_id"] not in captions:
            raise ConfigError(f"{where} names image id {ann['image_id']!r}, which is not among the images")
        if not ann["caption"].strip():
            raise ConfigError(f"{where}: empty caption for image id {ann['image_id']!r}")
        captions[ann["image_id"]].append(ann["caption"].strip())
    pairs = []
    for image_id in sorted(files):
        where = f"{path}: image id {image_id!r}"
        if not captions[image_id]:
            raise ConfigError(f"{where} ({files[image_id]}) has no captions")
        file = resolve(files[image_id], where)
        pairs += [(file, c) for c in captions[image_id]]
    return RetrievalDataset.from_pairs(pairs, name=name or path.stem, source=str(path), format="coco-json")


def _karpathy(path: Path, images: list[dict[str, Any]], image_root: Path | None, split: str | None,
              name: str | None) -> RetrievalDataset:
    resolve = _Resolver(path, image_root)
    chosen = [(n, im) for n, im in enumerate(images) if split is None or im.get("split", split) == split]
    if not chosen:
        found = sorted({str(im.get("split")) for im in images})
        raise ConfigError(f"{path}: no images in split {split!r} (splits: {', '.join(found)})")
    pairs = []
    for n, im in chosen:
        where = f"{path}: images[{n}]"
        filename = im.get("filename")
        if not isinstance(filename, str) or not filename:
            raise ConfigError(f"{where} has no filename")
        folder = im.get("filepath")
        ref = f"{folder}/{filename}" if isinstance(folder, str) and folder else filename
        sentences = im["sentences"]
        if not isinstance(sentences, list) or not sentences:
            raise ConfigError(f"{where} ({ref}) has no sentences")
        file = resolve(ref, where)
        for s, sentence in enumerate(sentences):
            text = sentence.get("raw") if isinstance(sentence, dict) else None
            if not isinstance(text, str) and isinstance(sentence, dict) and isinstance(sentence.get("tokens"), list):
                text = " ".join(map(str, sentence["tokens"]))
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{where} ({ref}): sentences[{s}] is empty")
            pairs.append((file, text.strip()))
    return RetrievalDataset.from_pairs(pairs, name=name or path.stem, source=str(path), format="karpathy-json")
