"""The layer contract beyond what import-linter checks (`make test` runs `lint-imports` on pyproject's contracts).

import-linter has no contract for private names, and its acyclic contract compares siblings
only (a package's __init__ importing its own children is not a sibling cycle), so these two
are checked here, on the real import graph (grimp, import-linter's engine) and the real AST.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "omnigen"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_uses(source: str, importer: str) -> list[str]:
    """`from omnigen.x import _name` and `x._name` (x an omnigen module) in another module than omnigen.x."""
    tree = ast.parse(source)
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> omnigen module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "omnigen" and node.level == 0:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") and node.module != importer:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "omnigen":
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and aliases[node.value.id] != importer
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    violations = [
        f"{module_name(path)} {use}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for use in private_uses(path.read_text(), module_name(path))
    ]
    assert violations == [], "make the name public (and documented) in its module, or move the code that needs it there"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from omnigen.plan.plan import _env, LISTEN\n", ["line 1: from omnigen.plan.plan import _env"]),
        ("from omnigen import plan\nplan._nth_host(1, 2)\n", ["line 2: plan._nth_host"]),
        ("import omnigen.plan.plan as p\np._env\n", ["line 2: p._env"]),
        ("from omnigen.plan.plan import __version__, make_plan\n", []),
        ("def _own() -> None: ...\n_own()\n", []),
    ],
)
def test_the_private_name_check_finds_both_forms(source: str, expected: list[str]) -> None:
    assert private_uses(source, "omnigen.plan.cluster") == expected


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), packages' __init__ included."""
    edges = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in edges[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    return cycles


def test_the_import_graph_has_no_cycle_at_any_level() -> None:
    # Type-checking imports count: an annotation that needs an upper layer is an upward dependency.
    assert import_cycles(grimp.build_graph("omnigen")) == []
