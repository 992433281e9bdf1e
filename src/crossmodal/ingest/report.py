"""What an ingest run did, in items (a captioned image is three items: image, caption, pair)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["IngestReport"]


@dataclass
class IngestReport:
    """What a run did, in items. ``removed`` counts every item the run deleted: items of files gone (with
    ``prune``), and items a file no longer produces (a removed line, a replaced caption); ``moved`` items were
    deleted at their old place and stored at their new one, vectors reused."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    files: int = 0
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        return self.unchanged

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "added": self.added, "updated": self.updated, "skipped": self.unchanged,
                "moved": self.moved, "removed": self.removed, "failed": len(self.failed),
                "failures": [{"file": f, "error": e} for f, e in self.failed], "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        parts = [f"{self.added} added", f"{self.updated} updated", f"{self.unchanged} skipped (unchanged)"]
        if self.moved:
            parts.append(f"{self.moved} moved")
        if self.removed:
            parts.append(f"{self.removed} removed")
        parts.append(f"{len(self.failed)} failed")
        return f"{self.files} files: " + ", ".join(parts) + f" in {self.seconds:.1f} s"
