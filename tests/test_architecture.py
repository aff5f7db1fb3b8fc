"""The dependency direction is part of the design; this test keeps it.

    connectors ──┐
    riskcore  ───┼──> aggregator      db <── aggregator
    devnet (tooling; only aggregator.devnet_cli / aggregator.demo may import it)

connectors and riskcore know nothing of db or aggregator; riskcore does no I/O and reads no clock.
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
        if mod.split(".")[0] in FORBIDDEN[package]
    ]
    assert not bad, "\n".join(bad)


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
