"""stores/ sits low in the layers: it imports only errors, space, identity, manifests and its own modules."""

from __future__ import annotations

import ast
from pathlib import Path

import crossmodal.stores

ROOT = Path(crossmodal.stores.__file__).parent
ALLOWED = {"errors", "space", "identity", "manifests", "stores"}


def _imports(path: Path) -> list[str]:
    """The crossmodal modules ``path`` imports (relative imports resolved), type-checking-only ones included."""
    package = ["crossmodal", *path.parent.relative_to(ROOT.parent).parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found += [module] if module else []
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [m for m in found if m == "crossmodal" or m.startswith("crossmodal.")]


def test_stores_import_nothing_above_them() -> None:
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 10
    above = {f"{p.relative_to(ROOT)}: {m}" for p in files for m in _imports(p)
             if m == "crossmodal" or m.split(".")[1] not in ALLOWED}
    assert not above
