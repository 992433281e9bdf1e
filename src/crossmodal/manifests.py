"""Caption and metadata files for ingest: TSV, CSV, JSON Lines (or a JSON list).

Every row names a file (column ``file``, ``path`` or ``image``; in a
headerless TSV, the first column). A file is matched by its path relative
to the collection's root, its path relative to the manifest's folder, its
absolute path, or its name alone (a row naming no folder matches files of that name in any folder).

* captions: the caption is the ``caption`` (or ``text``) column, or the second
  column of a headerless TSV; other columns become metadata of the caption's
  items. A file may have several captions (several rows).
* metadata: every other column becomes metadata of the file's items. In TSV
  and CSV, values that look like integers or decimals become numbers.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["Annotations", "load_captions", "load_metadata"]

_FILE_KEYS = ("file", "path", "image", "filename")
_TEXT_KEYS = ("caption", "text")


@dataclass
class Annotations:
    """Rows keyed by file; each row is (value, extra metadata)."""

    base: Path | None = None
    rows: dict[str, list[tuple[Any, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))
    by_name: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def empty(cls) -> Annotations:
        return cls()

    def add(self, key: str, value: Any, extra: dict[str, Any]) -> None:
        key = key.strip().replace("\\", "/").removeprefix("./")
        self.rows[key].append((value, extra))
        if "/" not in key:  # a bare name matches a file of that name in any folder
            self.by_name[key].add(key)

    def _key(self, path: Path, ref: str) -> str | None:
        candidates = [ref, str(path)]
        if self.base is not None:
            try:
                candidates.append(path.relative_to(self.base).as_posix())
            except ValueError:
                pass
        for key in candidates:
            if key in self.rows:
                return key
        return path.name if path.name in self.by_name else None

    def lookup_all(self, path: Path, ref: str) -> list[tuple[Any, dict[str, Any]]]:
        key = self._key(path, ref)
        return list(self.rows[key]) if key is not None else []

    def lookup(self, path: Path, ref: str) -> dict[str, Any]:
        """The metadata for a file (the rows' extras merged), {} if none."""
        return self.find(path, ref) or {}

    def find(self, path: Path, ref: str) -> dict[str, Any] | None:
        """The metadata for a file (the rows' extras merged), or None when no row names it."""
        rows = self.lookup_all(path, ref)
        if not rows:
            return None
        merged: dict[str, Any] = {}
        for value, extra in rows:
            merged.update(value if isinstance(value, dict) else extra)
        return merged


def _number(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        f = float(value)
        return f if f == f and f not in (float("inf"), float("-inf")) else value
    except ValueError:
        return value


def _rows(path: Path) -> list[dict[str, Any]]:
    """Rows as dicts; a headerless TSV gets columns 'file', 'caption', 'col3', ..."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise ConfigError(f"{path}:{n}: not JSON: {exc}") from exc
        return rows
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: not JSON: {exc}") from exc
        if not isinstance(data, list):
            raise ConfigError(f"{path}: expected a JSON list of objects")
        return data
    if suffix not in (".tsv", ".csv", ".txt"):
        raise ConfigError(f"{path}: use .tsv, .csv, .jsonl or .json")
    delimiter = "," if suffix == ".csv" else "\t"
    table = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if r and any(c.strip() for c in r)]
    if not table:
        return []
    header = [h.strip().lower() for h in table[0]]
    if header[0] in _FILE_KEYS:
        names, body = [h.strip() for h in table[0]], table[1:]
        names[0] = "file"
        return [{k: _number(v) if k not in ("file", *_TEXT_KEYS) else v for k, v in zip(names, r)} for r in body]
    names = ["file", "caption"] + [f"col{i}" for i in range(3, max(len(r) for r in table) + 1)]
    return [dict(zip(names, r)) for r in table]


def _file_of(row: Any, path: Path, n: int) -> str:
    if not isinstance(row, dict):
        raise ConfigError(f"{path}: row {n} is not an object")
    for key in _FILE_KEYS:
        if isinstance(row.get(key), str) and row[key].strip():
            return row[key]
    raise ConfigError(f"{path}: row {n} names no file (give a 'file' column)")


def load_captions(path: str | os.PathLike[str]) -> Annotations:
    p = Path(path).expanduser().absolute()
    out = Annotations(base=p.parent)
    for n, row in enumerate(_rows(p), start=1):
        file = _file_of(row, p, n)
        caption = next((row[k] for k in _TEXT_KEYS if isinstance(row.get(k), str)), None)
        if caption is None or not caption.strip():
            raise ConfigError(f"{p}: row {n} ({file}) has no caption")
        extra = {k: v for k, v in row.items() if k not in (*_FILE_KEYS, *_TEXT_KEYS) and v not in ("", None)}
        out.add(file, caption.strip(), extra)
    return out


def load_metadata(path: str | os.PathLike[str]) -> Annotations:
    p = Path(path).expanduser().absolute()
    out = Annotations(base=p.parent)
    for n, row in enumerate(_rows(p), start=1):
        file = _file_of(row, p, n)
        meta = {k: v for k, v in row.items() if k not in _FILE_KEYS and v != ""}
        out.add(file, meta, {})
    return out
