"""Where an item's reference points: an image path (relative to the collection's root, or absolute) or a URI.

:func:`resolve` is the rule. :class:`HitPaths` gives the same answer, as a string, for the path of every hit a
search returns, joining the strings itself where pathlib would change nothing in them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HitPaths", "resolve"]

_UNSEEN = object()


def resolve(reference: str, root: str | None) -> Path | None:
    """The file an image reference points to (None for URIs other than ``file://``); a relative path is under
    ``root`` when there is one."""
    if "://" in reference:
        return Path(reference[7:]) if reference.startswith("file://") else None
    p = Path(reference)
    if p.is_absolute() or not root:
        return p
    return Path(root) / p


def _plain(path: str) -> bool:
    """Whether pathlib keeps a POSIX path exactly as written (relative, or absolute with its leading slash cut):
    no empty or "." parts, no leading or trailing slash; so not a URI either."""
    padded = f"/{path}/"
    return "//" not in padded and "/./" not in padded


class HitPaths:
    """``str(resolve(reference, root))`` (or None), without pathlib for a plain reference: joined to a plain
    root as a string, or kept as it is when absolute or when there is no root. A search builds one per hit."""

    def __init__(self) -> None:
        # (the root last seen, the prefix a plain relative reference under it is joined to, or None: use pathlib),
        # one tuple, so threads never pair one root with another's prefix
        self._prefix: tuple[object, str | None] = (_UNSEEN, None)

    def __call__(self, reference: str, root: str | None) -> str | None:
        seen, prefix = self._prefix
        if root != seen:  # a root is absolute: plain once its leading slash is cut
            prefix = ("" if not root else f"{root}/" if root[0] == "/" and _plain(root[1:]) else None
                      ) if os.sep == "/" else None
            self._prefix = (root, prefix)
        if prefix is not None and reference:
            if reference[0] == "/":
                if _plain(reference[1:]):
                    return reference
            elif _plain(reference):
                return prefix + reference
        resolved = resolve(reference, root)
        return str(resolved) if resolved is not None else None
