"""The import structure of `kerasr/`, read from the source: no cycle, and imports that run down
the layers of the code map (README "Code map", DESIGN's "Imports flow one way").

Every `import` counts, also one inside a function: a lazy import hides a dependency from a
reader, not from the program. A module is a file; a package's `__init__.py` is the package's
module. A part is a top-level module or package (`kerasr.models`, `kerasr.io`, ...).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "kerasr"

# The layers, lowest first: a part imports only parts of lower layers (and its own modules).
LAYERS = (
    ("errors",),
    ("runtime", "keras_compat", "config"),
    ("io", "image_metadata", "resize"),
    ("images", "layers", "spectral"),
    # Pure video I/O (decode, segments, work folder, colour): no model code.
    ("video", "models"),
    ("weights",),
    ("losses", "metrics"),
    ("data",),
    ("generation",),
    # The tiling `Upscaler`, files, the video pipeline, export.
    ("upscaling",),
    # The SR protocol, GAN judges, collapse signals.
    ("evaluation",),
    # What runs here (devices, precision, XLA choices): above upscaling, below training.
    ("info",),
    ("training",),
    ("serve",),
    ("cli",),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_targets(source: str, module: str, is_package: bool) -> set[str]:
    """The dotted names a module's source imports (absolute, relative ones resolved);
    `from a import b` gives `a.b`, which is a module or a name in the module `a`."""
    here = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def build_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports. A name taken from a package's
    `__init__` is an import of that package, also from inside it: `__init__` runs first."""
    files = {_module_name(p): p for p in sorted(root.rglob("*.py"))}
    package = root.name

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        targets = import_targets(path.read_text(), module, path.name == "__init__.py")
        resolved = {resolve(t) for t in targets if t.split(".")[0] == package}
        graph[module] = {t for t in resolved if t and t != module and t != package}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def part(module: str) -> str:
    """`kerasr.models.vgg` -> `models`; `kerasr.io` -> `io`; `kerasr` -> `kerasr`."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else pieces[0]


def part_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {}
    for module, targets in graph.items():
        merged.setdefault(part(module), set()).update(
            part(t) for t in targets if part(t) != part(module)
        )
    return merged


@functools.cache
def _graph() -> dict[str, set[str]]:
    return build_graph()


def _edges(source_parts, target_parts):
    """`module -> imported module` lines between the given parts."""
    return [
        f"{module} -> {target}"
        for module, targets in sorted(_graph().items())
        if part(module) in source_parts
        for target in sorted(targets)
        if part(target) in target_parts
    ]


def test_the_checker_finds_a_cycle_through_a_function_level_import():
    source = "def f():\n    from kerasr.b import g\n"
    assert import_targets(source, "kerasr.a", False) == {"kerasr.b.g"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_cycle_between_modules():
    assert cycles(_graph()) == []


def test_no_cycle_between_parts():
    assert cycles(part_graph(_graph())) == []


def test_every_part_has_a_layer():
    unplaced = sorted({part(m) for m in _graph()} - set(RANK) - {"kerasr"})
    assert not unplaced, f"add these parts to LAYERS (and to the code map): {unplaced}"


def test_imports_run_down_the_layers():
    upward = [
        f"{module} -> {target}"
        for module, targets in sorted(_graph().items())
        if part(module) in RANK
        for target in sorted(targets)
        if part(target) in RANK
        and part(target) != part(module)
        and RANK[part(target)] >= RANK[part(module)]
    ]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    "parts,forbidden",
    [
        # Networks only: no file reading, no recipes, no training, no data pipelines.
        (("models",), ("weights", "config", "training", "data")),
        # Drawing, upscaling and video never depend on how a network was trained.
        (("upscaling", "video", "generation"), ("training",)),
        # Pure video I/O: decoding, segments, colour; the model runs in kerasr.upscaling.
        (("video",), ("models", "layers", "spectral", "weights", "upscaling", "generation")),
    ],
    ids=["models", "no-training-below", "video"],
)
def test_named_rules(parts, forbidden):
    found = _edges(parts, forbidden)
    assert not found, "\n".join(found)


def private_imports(source: str) -> list[str]:
    """The `from kerasr... import _name` of a module's source: another module's private
    helper, which should be made public where it is, or move."""
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == ROOT.name
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]


def test_no_module_imports_a_private_name_of_another():
    found = [
        f"{_module_name(path)}: {name}"
        for path in sorted(ROOT.rglob("*.py"))
        for name in private_imports(path.read_text())
    ]
    assert not found, "\n".join(found)


def test_config_imports_only_errors():
    found = [edge for edge in _edges(("config",), set(RANK) - {"config", "errors"})]
    assert not found, "\n".join(found)


def test_video_imports_no_framework():
    for path in sorted((ROOT / "video").glob("*.py")):
        names = import_targets(path.read_text(), _module_name(path), path.name == "__init__.py")
        heavy = sorted(n for n in names if n.split(".")[0] in ("keras", "tensorflow"))
        assert not heavy, f"{path.name}: {heavy}"
