"""The package layout is the architecture: these tests keep the code and its description equal.

- The core (and the signal detector) decides without I/O: it imports no runtime, adapter,
  store, network or web library, so backtest, replay and live can drive the same engine.
- Adapters implement the core's protocol and know nothing of the runtimes that drive them (the
  Alpaca emulator also prices option contracts with `options`).
- `docs/architecture.md` draws the dependencies between the packages; its diagram must list
  exactly the imports the code makes, so it cannot drift from the code.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "src" / "ict_trader"
SHARED = {
    "errors",
    "ranges",
    "logs",
    "collector",
    "__version__",
}  # small modules every layer may use
PURE = {"core", "signals"}
IO_LIBRARIES = {
    "sqlite3",
    "requests",
    "aiohttp",
    "alpaca",
    "socket",
    "subprocess",
    "apprise",
    "playwright",
    "urllib",
    "http",
}


def part_of(path: Path) -> str:
    """The top-level package (or module) a source file belongs to."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(ict_trader parts imported, other top-level modules imported) by one file."""
    tree = ast.parse(path.read_text(), str(path))
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "ict_trader":
                ours.update(alias.name for alias in node.names)
                continue
        else:
            continue
        for name in names:
            top, _, rest = name.partition(".")
            if top == "ict_trader":
                ours.add(rest.split(".")[0])
            else:
                others.add(top)
    return ours, others


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        part = part_of(path)
        if part in {"__init__", "__main__"} | SHARED:
            continue
        ours, _ = imports(path)
        graph.setdefault(part, set()).update(ours - SHARED - {part})
    return graph


def test_the_core_and_the_signals_do_no_io() -> None:
    for path in PACKAGE.rglob("*.py"):
        if part_of(path) not in PURE:
            continue
        ours, others = imports(path)
        assert ours - SHARED <= PURE, f"{path.relative_to(REPO)} imports {ours - SHARED - PURE}"
        assert not others & IO_LIBRARIES, f"{path.relative_to(REPO)} imports {others}"
        assert others <= set(sys.stdlib_module_names) | {"exchange_calendars", "pandas"}, (
            f"{path.relative_to(REPO)} imports {others - set(sys.stdlib_module_names)}"
        )


def test_adapters_know_only_the_core() -> None:
    """Besides the core, only two adapters may import `options`: the Alpaca emulator, which
    prices the option contracts it serves with the project's one pricing model rather than a
    second one, and the Alpaca contract desk, which picks a strike by the same rules as the
    simulation (`options/chain.py`). `options` itself knows no adapter."""
    assert package_graph()["adapters"] <= PURE | {"options"}
    assert "adapters" not in package_graph()["options"]
    alpaca = PACKAGE / "adapters" / "alpaca"
    for path in (PACKAGE / "adapters").rglob("*.py"):
        ours, _ = imports(path)
        if "options" in ours:
            allowed = path.is_relative_to(alpaca / "emulator") or path == alpaca / "options.py"
            assert allowed, f"{path.relative_to(REPO)} imports options"


def test_the_architecture_diagram_lists_exactly_the_packages_imports() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    diagram = text.split("```mermaid", 1)[1].split("```", 1)[0]
    drawn: dict[str, set[str]] = {}
    for source, targets in re.findall(r"^\s*(\w+)\s*-->\s*([\w\s&]+?)\s*$", diagram, re.M):
        drawn.setdefault(source, set()).update(t.strip() for t in targets.split("&"))
    actual = {part: deps for part, deps in package_graph().items() if deps}
    assert drawn == actual
