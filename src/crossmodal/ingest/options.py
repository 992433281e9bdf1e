"""How an ingest run reads and embeds its files: one frozen :class:`IngestOptions`, built once and passed down whole."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .discover import DEFAULT_MAX_FILE_SIZE

__all__ = ["IngestOptions"]


@dataclass(frozen=True)
class IngestOptions:
    """What to index and how (the ``crossmodal index`` options; see :func:`crossmodal.ingest.ingest`).

    ``include``/``exclude``: globs on a file's path relative to the folder given, or its name. ``captions`` /
    ``metadata``: files of captions / metadata for the files (None: this run gives none, and what earlier runs
    stored stays). ``prune``: delete items whose files are gone (and, with captions/metadata, what those do not
    list). ``batch_size``: items per inference batch and commit (None: the model's). ``workers``: image decoding
    workers (None: chosen from the cores; 0: inline), on processes with ``processes``. Files larger than
    ``max_file_size`` bytes are reported, never read.
    """

    recursive: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    lines: bool = False
    prune: bool = False
    captions: Path | None = None
    metadata: Path | None = None
    image_weight: float | None = None
    batch_size: int | None = None
    workers: int | None = None
    processes: bool = False
    max_file_size: int = DEFAULT_MAX_FILE_SIZE

    def __post_init__(self) -> None:
        for name in ("include", "exclude"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ConfigError(f"{name} must be a list of globs, not one string; wrap it: [{value!r}]")
            object.__setattr__(self, name, tuple(value))
        for name in ("captions", "metadata"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(os.fspath(value)))
        if self.max_file_size < 1:
            raise ConfigError(f"max_file_size must be at least 1 byte, got {self.max_file_size}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"workers must be 0 or more, got {self.workers}")
        if self.image_weight is not None and not 0.0 <= self.image_weight <= 1.0:
            raise ConfigError(f"image_weight must be in [0, 1], got {self.image_weight}")

    def with_overrides(self, overrides: Mapping[str, Any]) -> IngestOptions:
        """These options with some replaced by name (ConfigError naming an unknown one)."""
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown ingest option {', '.join(unknown)}; the options are {', '.join(sorted(known))}")
        return replace(self, **overrides)
