"""The package's imports run one way: down a declared list of layers, with no circle between files.

The import graph is read from the source with :mod:`ast` (every ``import`` and
``from ... import`` in a module, including those inside functions and under
``TYPE_CHECKING``: each is a dependency). A *part* is a top-level module or a
sub-package of ``crossmodal`` (``crossmodal/__init__.py`` itself is the public
API, ``<root>``). docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "crossmodal"

#: bottom to top; a part may import parts of lower layers only (never its own layer's other parts)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "jsontext"),
    ("models", "space", "identity", "manifests", "inputs", "references"),  # inputs: typed text/image/pair inputs;
    # data: specs, catalog, resolution, hub; spaces; ids and hashes; references: where an item's reference points
    ("preprocessing", "stores"),
    ("pipeline", "retrieval"),  # retrieval: keyword/sparse/multi-vector signals and their fusion
    ("runtimes",),
    ("bge",),  # the BAAI graphs (Visualized-BGE, BGE-M3), their export and their numpy post-processing
    ("embedder",),
    ("families", "dispatch", "token_outputs"),  # one module per model family; dispatch: mixed batches; token_outputs:
    # the Model classes with sparse / multi-vector methods
    ("adding", "duplicates", "records", "scoring"),  # a collection's add path, its near-duplicate finder, record
    # checks; scoring: BGE-M3's compute_score on the library's outputs
    ("loader", "collection"),
    ("settings", "ingest"),  # settings: the one reader of the environment, at the edge
    ("store", "testing"),
    ("defaults",),  # the public API's defaults, from the settings
    ("<root>",),  # crossmodal/__init__.py: the public API
    ("eval", "distributed"),
    ("fidelity",),
    ("server",),
    ("cli",),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "crossmodal"]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
        if source.split(".")[0] != "crossmodal":
            return []
    # ``from pkg import sub`` depends on the module ``pkg.sub`` when there is one, else on ``pkg``.
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """Module -> the crossmodal modules it imports."""
    files = {module_name(p): p for p in root.rglob("*.py")}
    known = set(files)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, path.name == "__init__.py", node, known):
                    while target not in known and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target in known and target != module:
                        graph[module].add(target)
    return graph


def part(module: str) -> str:
    names = module.split(".")
    return names[1] if len(names) > 1 else "<root>"


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_reader_sees_imports_of_every_form(graph: dict[str, set[str]]) -> None:
    assert "crossmodal.families" in graph["crossmodal.loader"]  # from .families import FAMILIES
    assert "crossmodal.models.spec" in graph["crossmodal.families.base"]  # from ..models.spec import ...
    assert "crossmodal.runtimes.onnx" in graph["crossmodal.families.two_tower"]  # inside a function
    assert "crossmodal.loader" in graph["crossmodal.settings"]  # under TYPE_CHECKING
    assert "crossmodal.fidelity" in graph["crossmodal.cli.models"]


def test_the_cycle_finder_finds_circles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_files(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_no_import_circle_between_parts(graph: dict[str, set[str]]) -> None:
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        parts.setdefault(part(module), set()).update(part(t) for t in targets if part(t) != part(module))
    assert cycles(parts) == []


def test_every_part_has_a_layer(graph: dict[str, set[str]]) -> None:
    declared = [p for layer in LAYERS for p in layer]
    assert len(declared) == len(set(declared))
    assert {part(m) for m in graph} == set(declared), "place a new part in LAYERS (and docs/architecture.md)"


def test_imports_only_go_down_the_layers(graph: dict[str, set[str]]) -> None:
    level = {p: i for i, layer in enumerate(LAYERS) for p in layer}
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if part(target) != part(module) and level[part(target)] >= level[part(module)]
    )
    assert upward == []


# ------------------------------------------------------------------------------------- docs/architecture.md

ARCHITECTURE = SRC.parents[1] / "docs" / "architecture.md"


def documented_layers(text: str) -> list[tuple[str, ...]]:
    """The layer table of docs/architecture.md (between its ``layers`` markers), bottom to top."""
    block = text.split("<!-- layers:", 1)[1].split("<!-- /layers -->", 1)[0]
    rows = [line.split("|") for line in block.splitlines() if line.startswith("|") and line[1:].strip()[:1].isdigit()]
    return [tuple(name.strip() for name in re.findall(r"`([^`]+)`", row[2])) for row in rows]


def test_the_architecture_page_shows_the_enforced_layers() -> None:
    assert documented_layers(ARCHITECTURE.read_text(encoding="utf-8")) == list(LAYERS), \
        "docs/architecture.md's layer table differs from LAYERS: keep them the same"


def test_every_file_the_architecture_page_names_exists() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = set(re.findall(r"\b((?:[a-z_]+/)+[a-z_]+\.py|(?:[a-z_]+/)+(?=[\s`]))", text))
    missing = []
    for name in sorted(named):
        candidates = [SRC / name, SRC.parent / name, SRC.parents[1] / name]
        if not any(c.exists() for c in candidates):
            missing.append(name)
    assert len(named) > 30
    assert missing == []


def test_no_module_is_over_500_lines() -> None:
    sizes = {module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in SRC.rglob("*.py")}
    assert len(sizes) > 100
    assert {m: n for m, n in sizes.items() if n > 500} == {}
