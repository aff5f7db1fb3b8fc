"""The dependency direction is part of the design; this test keeps it.

    connectors ──┐
    riskcore  ───┼──> aggregator      db <── aggregator
    devnet (tooling; only aggregator.devnet_cli / aggregator.demo may import it)

connectors and riskcore know nothing of db or aggregator; riskcore does no I/O and reads no clock. db imports one
module of connectors, connectors.types (pure: the one address rule), and nothing else of it. Inside aggregator/,
imports go down its layers (base → plugins → engines → views → surfaces; see AGGREGATOR_LAYERS), without a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("connectors", "riskcore", "db", "aggregator", "devnet")

FORBIDDEN: dict[str, set[str]] = {
    "connectors": {"db", "aggregator", "riskcore", "devnet"},
    "riskcore": {"db", "aggregator", "connectors", "devnet"},
    "db": {"aggregator", "connectors", "riskcore", "devnet"},
    "devnet": {"aggregator", "db", "riskcore"},
}
# The one exception to FORBIDDEN: db takes the product's one address rule (EIP-55) from connectors.types.
ALLOWED: dict[str, set[str]] = {"db": {"connectors.types"}}
PURE_MODULE_IMPORTS = {"connectors.types": {"__future__", "re", "functools", "typing", "eth_hash", "pydantic",
                                            "connectors"}}
"""What a module another layer may import imports (``connectors``: connectors.errors only)."""
# riskcore is pure math: no network, files, processes, databases or clocks.
RISKCORE_FORBIDDEN_MODULES = {
    "httpx", "requests", "socket", "sqlalchemy", "subprocess", "os", "pathlib", "io", "time",
    "datetime", "random", "urllib", "asyncio", "threading", "logging",
}
DEVNET_IMPORTERS = {"aggregator/devnet_cli.py", "aggregator/demo.py"}


def _imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _sources(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "node_modules" not in p.parts]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upwards(package: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {mod}"
        for path in _sources(package)
        for mod in _imports(path)
        if mod.split(".")[0] in FORBIDDEN[package] and mod not in ALLOWED.get(package, set())
    ]
    assert not bad, "\n".join(bad)


def test_the_modules_other_layers_may_import_stay_pure() -> None:
    for module, allowed in PURE_MODULE_IMPORTS.items():
        path = ROOT / (module.replace(".", "/") + ".py")
        imports = set(_imports(path))
        bad = {m for m in imports if m.split(".")[0] not in allowed}
        bad |= {m for m in imports if m.split(".")[0] == "connectors" and m != "connectors.errors"}
        assert not bad, f"{module} imports {sorted(bad)}"


def test_riskcore_does_no_io_and_reads_no_clock() -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {mod}"
        for path in _sources("riskcore")
        for mod in _imports(path)
        if mod.split(".")[0] in RISKCORE_FORBIDDEN_MODULES
    ]
    assert not bad, "\n".join(bad)


def test_only_devnet_tooling_imports_devnet() -> None:
    bad = [
        str(path.relative_to(ROOT))
        for package in ("aggregator", "connectors", "riskcore", "db")
        for path in _sources(package)
        if any(m.split(".")[0] == "devnet" for m in _imports(path))
        and str(path.relative_to(ROOT)) not in DEVNET_IMPORTERS
    ]
    assert not bad, f"product code imports devnet: {bad}"


def test_every_package_has_sources() -> None:
    for package in PACKAGES:
        assert _sources(package), f"{package} has no Python sources"


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    # Guard against a checker that silently finds nothing.
    probe = tmp_path / "probe.py"
    probe.write_text("import db.store\nfrom aggregator import cli\nfrom . import local\n")
    assert sorted(_imports(probe)) == ["aggregator", "db.store"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
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


def _import_graph(package: str) -> dict[str, set[str]]:
    """Module → the package's modules it imports, at any depth of the file (function-level imports included)."""
    modules = {_module_name(p): p for p in _sources(package)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for mod in _imports(path):
            while mod and mod not in modules:
                mod = mod.rpartition(".")[0]
            if mod and mod != name and mod != package:
                targets.add(mod)
        graph[name] = targets
    return graph


def test_db_has_no_import_cycle() -> None:
    assert _cycles(_import_graph("db")) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# Connector internals (anything under connectors/<venue>/) are the venue's own: in aggregator/ only the venue's
# plugin package (aggregator/venues/<venue>/) imports them. This list may only shrink (it is empty: keep it so).
CONNECTOR_INTERNALS_NOT_YET_MOVED: frozenset[str] = frozenset()


def test_aggregator_imports_no_connector_internals_outside_the_venue_packages() -> None:
    from connectors.registry import VENUES

    importers: dict[str, list[str]] = {}
    for path in _sources("aggregator"):
        rel = path.relative_to(ROOT).as_posix()
        parts = rel.split("/")
        if len(parts) > 3 and parts[1] == "venues" and parts[2] in VENUES:
            continue
        bad = [m for m in _imports(path) if m.split(".")[0] == "connectors" and len(m.split(".")) > 1
               and m.split(".")[1] in VENUES]
        if bad:
            importers[rel] = bad
    leaks = {f: m for f, m in importers.items() if f not in CONNECTOR_INTERNALS_NOT_YET_MOVED}
    assert not leaks, f"connector internals imported outside the venue packages: {leaks}"
    moved = sorted(CONNECTOR_INTERNALS_NOT_YET_MOVED - set(importers))
    assert not moved, f"take these off CONNECTOR_INTERNALS_NOT_YET_MOVED: {moved}"


# Inside aggregator/, imports go down these layers, never up (module-level and function-level imports alike):
# what a layer composes sits above what it uses, so the base never learns of a plugin, a plugin of an engine, an
# engine of a view, a view of a surface. A module belongs to the layer of its longest listed prefix; every module
# must belong to one (a new module is placed on purpose). The configuration finds a venue's plugin by name through
# the one registry (connectors.registry), never by importing the plugins or their loader.
AGGREGATOR_LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("base", frozenset({"aggregator", "aggregator.config", "aggregator.views", "aggregator.chainid",
                        "aggregator.marketdata", "aggregator.gcidle"})),
    ("plugins", frozenset({"aggregator.venues", "aggregator.keeper.plugin"})),
    ("engines", frozenset({"aggregator.pipeline", "aggregator.risk", "aggregator.stress", "aggregator.whatif",
                           "aggregator.alerts", "aggregator.keeper", "aggregator.cycle",
                           "aggregator.dirty", "aggregator.blocksync", "aggregator.blockrun"})),
    ("views", frozenset({"aggregator.render", "aggregator.documents", "aggregator.metrics",
                         "aggregator.backtest_report", "aggregator.keeper.banner"})),
    ("surfaces", frozenset({"aggregator.api", "aggregator.cli", "aggregator.api_cli", "aggregator.automation_cli",
                            "aggregator.backtest_cli", "aggregator.devnet_cli", "aggregator.whatif_cli",
                            "aggregator.demo", "aggregator.scheduler", "aggregator.runview",
                            "aggregator.store_cli"})),
)


def _layer(module: str) -> int | None:
    """The index of ``module``'s layer in :data:`AGGREGATOR_LAYERS` (``None``: in none)."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for i, (_, prefixes) in enumerate(AGGREGATOR_LAYERS):
        for prefix in prefixes:
            hit = module == prefix or (prefix != "aggregator" and module.startswith(prefix + "."))
            if hit and (best is None or len(prefix) > best[0]):
                best = (len(prefix), i)
    return None if best is None else best[1]


def test_every_aggregator_module_has_a_layer() -> None:
    unplaced = sorted(m for m in _import_graph("aggregator") if _layer(m) is None)
    assert not unplaced, f"place these in AGGREGATOR_LAYERS: {unplaced}"


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import of ``graph`` that goes up the layers, in words."""
    return [
        f"{m} ({AGGREGATOR_LAYERS[lm][0]}) imports {t} ({AGGREGATOR_LAYERS[lt][0]})"
        for m, targets in sorted(graph.items())
        for t in sorted(targets)
        if (lm := _layer(m)) is not None and (lt := _layer(t)) is not None and lt > lm
    ]


def test_aggregator_imports_go_down_the_layers() -> None:
    upward = _upward(_import_graph("aggregator"))
    assert not upward, "\n".join(upward)


def test_aggregator_has_no_import_cycle() -> None:
    assert _cycles(_import_graph("aggregator")) == []


def test_the_layer_check_sees_an_upward_import() -> None:
    graph = {"aggregator.config": {"aggregator.views", "aggregator.venues"},
             "aggregator.api.whatif": {"aggregator.api.deps", "aggregator.whatif"}}
    assert _upward(graph) == ["aggregator.config (base) imports aggregator.venues (plugins)"]
    assert _layer("aggregator.config") == 0
    assert _layer("aggregator.keeper.plugin") == 1
    assert _layer("aggregator.keeper.runner") == 2
    assert _layer("aggregator.keeper.banner") == 3
    assert _layer("aggregator.api.deps") == 4
    assert _layer("aggregator.venues.plugin") == 1
    assert _layer("aggregator_elsewhere") is None
