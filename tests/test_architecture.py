"""The import rules of DESIGN.md §2, read from the source: every `import` and `from ... import`
anywhere in a module (inside functions and `if TYPE_CHECKING:` blocks too) counts.

- `kraken_sim` imports nothing from `copytrader`;
- each part of `copytrader` imports only the parts below it (ALLOWED), so nothing imports upward:
  the daemon (`service`) never imports `paper`, the feed never imports `copying`;
- sizing and config never import the Kraken adapter;
- no import cycle between modules;
- benchmarks never import the tests.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# Which parts each part may import (besides itself). `cli` and `__main__` sit on top.
BASE = {"domain", "errors", "logs"}
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "errors": set(),
    "logs": set(),
    "config": BASE,
    "nonce": BASE,
    "kraken": BASE | {"config", "nonce"},
    "ledger": BASE,
    "feed": BASE | {"config", "kraken", "ledger"},
    "copying": BASE | {"config", "kraken", "ledger"},
    "service": BASE | {"config", "nonce", "kraken", "ledger", "feed", "copying"},
    "paper": BASE | {"config", "service"},
    "cli": BASE | {"service", "paper"},
    "__main__": {"cli"},
    "__init__": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(package: str) -> dict[str, Path]:
    return {module_name(path): path for path in sorted((SRC / package).rglob("*.py"))}


def imported_modules(name: str, path: Path) -> Iterator[str]:
    """Every module this one imports, absolute; `from a import b` yields `a.b` when that is a
    module of ours, else `a`."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}"
            yield base


def part_of(module: str) -> str:
    """`copytrader.copying.sizing` -> `copying`; `copytrader.logs` -> `logs`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


ALL_MODULES = source_modules("copytrader") | source_modules("kraken_sim")


def our_imports(name: str) -> set[str]:
    """The modules of ours that `name` imports (a `from pkg import name` of a function counts
    as importing `pkg`)."""
    found = set()
    for target in imported_modules(name, ALL_MODULES[name]):
        while target and target not in ALL_MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


GRAPH = {name: our_imports(name) for name in ALL_MODULES}


def test_the_rules_see_every_part() -> None:
    parts = {part_of(name) for name in source_modules("copytrader")}
    assert parts == set(ALLOWED), "a new part needs its line in ALLOWED"


def test_kraken_sim_imports_nothing_from_copytrader() -> None:
    offending = {
        (name, target)
        for name in source_modules("kraken_sim")
        for target in imported_modules(name, ALL_MODULES[name])
        if target == "copytrader" or target.startswith("copytrader.")
    }
    assert not offending


@pytest.mark.parametrize("name", sorted(source_modules("copytrader")))
def test_imports_go_only_downward(name: str) -> None:
    part = part_of(name)
    upward = sorted(
        target
        for target in GRAPH[name]
        if target.startswith("copytrader")
        and part_of(target) != part
        and part_of(target) not in ALLOWED[part]
    )
    assert not upward, f"{name} ({part}) may import only {sorted(ALLOWED[part])}"


@pytest.mark.parametrize("name", ["copytrader.copying.sizing", "copytrader.config"])
def test_sizing_and_config_never_reach_the_kraken_adapter(name: str) -> None:
    modules = [module for module in GRAPH if module == name or module.startswith(name + ".")]
    reached: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        for target in GRAPH[module]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert not [module for module in reached if module.startswith("copytrader.kraken")]


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert not cycles


@pytest.mark.xfail(reason="benchmarks still import tests/ support code")
def test_benchmarks_never_import_the_tests() -> None:
    offending = [
        (path.name, target)
        for path in sorted((ROOT / "benchmarks").glob("*.py"))
        for target in imported_modules(f"benchmarks.{path.stem}", path)
        if target == "tests" or target.startswith("tests.")
    ]
    assert not offending
