"""Where references point: a hit's path string is always what resolve() gives, pathlib or not."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from crossmodal.references import HitPaths, resolve

PARTS = ["", ".", "..", "a", "b c", "é", "x.jpg", ":", "file:", "\\", " "]


def references() -> list[str]:
    out = []
    for k in range(1, 4):
        for combo in itertools.product(PARTS, repeat=k):
            for lead, trail in itertools.product(("", "/", "//", "./"), ("", "/")):
                out.append(lead + "/".join(combo) + trail)
    return out + ["file:///abs/a.png", "https://x/a.png", "s3://bucket/a.png"]


@pytest.mark.parametrize("root", [None, "", "/", "/r/oot", "/r/oot/", "/r//oot", "/r/./oot", "//r", "/r/é b"])
def test_hit_paths_equal_resolve_for_every_reference(root: str | None) -> None:
    paths = HitPaths()
    for reference in references():
        resolved = resolve(reference, root)
        assert paths(reference, root) == (None if resolved is None else str(resolved)), (reference, root)


def test_hit_paths_follow_a_new_root() -> None:
    paths = HitPaths()
    assert paths("a/b.png", "/old") == "/old/a/b.png"
    assert paths("a/b.png", "/new") == "/new/a/b.png"
    assert paths("a/b.png", None) == "a/b.png"


def test_resolve() -> None:
    assert resolve("a.png", "/root") == Path("/root/a.png")
    assert resolve("/abs/a.png", "/root") == Path("/abs/a.png")
    assert resolve("a.png", None) == Path("a.png")
    assert resolve("file:///abs/a.png", "/root") == Path("/abs/a.png")
    assert resolve("https://x/a.png", "/root") is None
