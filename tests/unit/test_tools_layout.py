"""The tools' layout shows its parts: modules import no circle, and the subpackages depend one way only
(console and project below everything; operations never start a local service, local never runs ops)."""

from __future__ import annotations

import ast
from pathlib import Path

import expensebot_tools

ROOT = Path(expensebot_tools.__file__).parent
# Which subpackage may import which (the top-level cli imports them all; nothing imports cli).
ALLOWED = {
    "console": set(),
    "project": {"console"},
    "operations": {"console", "project"},
    "local": {"console", "project"},
    "bench": {"console", "project", "local"},
    "cli": {"console", "project", "operations", "local", "bench"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every expensebot_tools module → the expensebot_tools modules it imports, at the top or inside a function."""
    modules = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            imported |= {target for target in targets if target in modules and target != name}
        graph[name] = imported
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodule is how packages re-export, not a circle.
            if node == target.rpartition(".")[0]:
                continue
            if state.get(target) == 1:
                found.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_module_imports_a_circle():
    assert _cycles(import_graph()) == []


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_subpackages_depend_one_way():
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if _part(target) != _part(module) and _part(target) not in ALLOWED.get(_part(module), set())
    )
    assert wrong == []


def test_every_subpackage_is_named_in_the_rule():
    parts = {_part(module) for module in import_graph()} - {"__init__"}
    assert parts <= set(ALLOWED), parts - set(ALLOWED)


def test_no_module_is_a_monolith():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines()) for path in ROOT.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > 700} == {}
