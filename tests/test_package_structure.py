"""The shape of the package: no import cycle among memorylab's modules, no private name used across modules, and
a tests/ tree that mirrors memorylab/.

Imports are read from the source (ast), every one of them: at module level, inside functions (the lazy ones)
and under `if TYPE_CHECKING:`. A cycle of lazy imports is still a cycle: the modules cannot be understood, tested
or moved one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "memorylab"
TESTS = ROOT / "tests"
# Folders of tests/ that stand for no package: whole scenarios run end to end.
NOT_PACKAGES = {"e2e"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _absolute(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str) -> list[tuple[str, ast.AST, list[str]]]:
    """(imported memorylab module, the import node, names taken from it) for every import in module `name`."""
    path = MODULES[name]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node, []) for a in node.names if a.name.startswith("memorylab")]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, name, path.name == "__init__.py")
            if not source.startswith("memorylab"):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((submodule, node, []) if submodule in MODULES else (source, node, [alias.name]))
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: {target for target, _, _ in imports_of(name) if target in MODULES and target != name}
            for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses() -> list[str]:
    """`from memorylab.x import _name`, and `alias._name` on a memorylab module imported under `alias`."""
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        aliases = {}
        for target, node, taken in imports_of(name):
            found += [f"{name} imports {n} from {target}" for n in taken if _private(n)]
            for alias in getattr(node, "names", []):
                if target.endswith(alias.name) or (isinstance(node, ast.Import) and alias.name == target):
                    aliases[alias.asname or alias.name.split(".")[0]] = target
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and _private(node.attr) and aliases[node.value.id] != name):
                found.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    return sorted(set(found))


def test_the_reader_finds_lazy_and_type_checking_imports(tmp_path):
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from memorylab.report import fmt\n"
              "def f():\n    from memorylab import errors\n    import memorylab.dotted as d\n")
    tree = ast.parse(source)
    imported = {getattr(n, "module", None) or n.names[0].name for n in ast.walk(tree)
                if isinstance(n, (ast.Import, ast.ImportFrom))}
    assert {"memorylab.report", "memorylab", "memorylab.dotted"} <= imported
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_memorylab_modules():
    found = cycles(import_graph())
    assert not found, "import cycles (lazy imports included):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_private_name_crosses_a_module():
    found = private_uses()
    assert not found, "private names used from another module (make them public where both reach them):\n" + \
        "\n".join(found)


def test_tests_mirror_the_package():
    """Each folder of tests/ is the folder of the package it tests (tests/serve for memorylab/serve, ...)."""
    strays = [d.name for d in TESTS.iterdir()
              if d.is_dir() and not d.name.startswith((".", "_")) and d.name not in NOT_PACKAGES
              and not (PACKAGE / d.name).is_dir()]
    assert not strays, f"tests/ folders that mirror no package under memorylab/: {strays}"


def test_each_test_module_tests_the_package_of_its_folder():
    """A test module under tests/<pkg>/ that imports memorylab imports memorylab.<pkg>: it tests that package,
    not another's. Modules that drive memorylab whole (the CLI, or HTTP against a served app) may test a
    package's behaviour through it."""
    strays = []
    for path in sorted(TESTS.glob("*/test_*.py")):
        if path.parent.name in NOT_PACKAGES:
            continue
        tree = ast.parse(path.read_text(), str(path))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        ours = {m for m in imported if m.startswith("memorylab")}
        package = f"memorylab.{path.parent.name}"
        if ours and "memorylab.cli" not in ours and not any(m == package or m.startswith(package + ".") for m in ours):
            strays.append(str(path.relative_to(TESTS)))
    assert not strays, f"test modules that import nothing of the package their folder mirrors: {strays}"
