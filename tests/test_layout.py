"""The package's layering, read from the source: the import graph has no cycle (between subpackages, nor between
modules), each layer imports only the layers below it, and the tests use fvr's public names only."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted((SRC / "fvr").rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "TYPE_CHECKING" or
               isinstance(n, ast.Attribute) and n.attr == "TYPE_CHECKING" for n in ast.walk(test))


def _imports(name: str, path: Path) -> set[str]:
    """Every fvr module ``name`` imports at run time: at module level or inside functions, but not under
    ``if TYPE_CHECKING:`` (annotations only)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def resolve(target: str) -> str:
        while target not in MODULES and "." in target:
            target = target.rsplit(".", 1)[0]
        return target

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(resolve(a.name) for a in child.names if a.name.startswith("fvr"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package[: len(package) - child.level + 1] + ([base] if base else []))
                if base.startswith("fvr"):
                    # `from fvr.models import nets` imports the submodule; `from fvr.models import Restorer` the package
                    found.update(resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in MODULES else resolve(base)
                                 for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _group(name: str, depth: int) -> str:
    return ".".join(name.split(".")[:depth])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
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
            connect(v)
    return found


def _grouped(depth: int) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, targets in GRAPH.items():
        for target in targets:
            a, b = _group(name, depth), _group(target, depth)
            if a != b:
                graph[a].add(b)
    return graph


def test_the_import_graph_is_read() -> None:
    """The checks below see real edges (a parser that found nothing would pass them all)."""
    assert "fvr.run.pipeline" in MODULES and "fvr.faces.analyse" in GRAPH["fvr.run.pipeline"]
    assert "fvr.models.registry" in GRAPH["fvr.run.build"]
    assert "fvr.models.temporal.stabilise" in GRAPH["fvr.models.registry"]  # a lazy import counts
    assert "fvr.compose.background" not in GRAPH["fvr.models.loaders.files"]  # a TYPE_CHECKING import does not
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("depth", [2, 3])
def test_no_import_cycle_between_subpackages(depth: int) -> None:
    """fvr.io, fvr.faces, fvr.models, ... (depth 2) and their own subpackages, e.g. fvr.models.nets (depth 3)."""
    assert _cycles(_grouped(depth)) == []


def test_no_import_cycle_between_modules() -> None:
    assert _cycles({k: set(v) for k, v in GRAPH.items()}) == []


# Each layer may import the layers listed for it (and fvr.errors, fvr's base); nothing else of fvr.
LAYERS = {
    "fvr.io": set(),
    "fvr.faces": set(),
    "fvr.flow": set(),
    "fvr.compose": set(),
    "fvr.degrade": {"fvr.io"},
    "fvr.models": {"fvr.compose", "fvr.faces", "fvr.flow"},
    "fvr.metrics": {"fvr.faces", "fvr.models", "fvr.flow", "fvr.compose"},
    "fvr.run": {"fvr.io", "fvr.faces", "fvr.models", "fvr.compose", "fvr.signals", "fvr.synthetic", "fvr.metrics"},
    "fvr.provenance": {"fvr.io", "fvr.faces", "fvr.models", "fvr.compose", "fvr.run", "fvr.metrics"},
    "fvr.ui": {"fvr.io", "fvr.faces", "fvr.models", "fvr.compose", "fvr.run", "fvr.inspect", "fvr.metrics",
               "fvr.provenance"},
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_the_layers_below(layer: str) -> None:
    allowed = LAYERS[layer] | {layer, "fvr.errors", "fvr"}
    wrong = {f"{name} -> {target}" for name, targets in GRAPH.items() if _group(name, 2) == layer
             for target in targets if _group(target, 2) not in allowed}
    assert not wrong, sorted(wrong)


def test_compose_holds_no_networks() -> None:
    """Frame up-sampling networks are models (fvr.models.upsample, fvr.models.backgrounds); compose only pastes
    and resamples."""
    for name, path in MODULES.items():
        if name.startswith("fvr.compose"):
            assert "torch" not in path.read_text(), name


def _private_uses(path: Path) -> list[str]:
    """``from fvr... import _name`` and ``module._name`` where ``module`` was imported from fvr."""
    tree = ast.parse(path.read_text())
    fvr_modules: set[str] = set()
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fvr"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    uses.append(f"{node.module}.{alias.name}")
                elif f"{node.module}.{alias.name}" in MODULES:
                    fvr_modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            fvr_modules.update(a.asname or a.name for a in node.names if a.name.startswith("fvr"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = ast.unparse(node.value)
            if owner in fvr_modules or any(owner.startswith(f"{m}.") for m in fvr_modules):
                uses.append(f"{owner}.{node.attr}")
    return uses


def test_tests_use_public_names_only() -> None:
    """A test that reaches for a private name pins an implementation, not a behaviour."""
    uses = {f"{p.relative_to(ROOT)}: {u}" for p in sorted((ROOT / "tests").rglob("*.py")) for u in _private_uses(p)}
    assert not uses, sorted(uses)


def test_tests_mirror_the_source_folders() -> None:
    """tests/<package>/ for each subpackage of fvr with tests of its own, so a module's tests are found by its
    path; only the shared fixtures and cross-cutting tests (layout, robustness, fuzz, real clips) sit on top."""
    packages = {p.name for p in (SRC / "fvr").iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    assert folders - {"spandrel_env"} <= packages, folders - packages
    top = {p.name for p in (ROOT / "tests").glob("test_*.py")}
    assert top <= {"test_layout.py", "test_robustness.py", "test_fuzz.py", "test_real_clips.py", "test_demo.py"}, top
