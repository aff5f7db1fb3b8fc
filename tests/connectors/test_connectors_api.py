"""Every connectors module declares its public names in ``__all__``, and each of them exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import connectors

MODULES = sorted(m.name for m in pkgutil.walk_packages(connectors.__path__, "connectors.") if not m.ispkg)


def test_the_expected_modules_exist() -> None:
    for name in (
        "connectors.evm.abi",
        "connectors.evm.rpc",
        "connectors.evm.multicall",
        "connectors.chainlink.reader",
        "connectors.aave_v3.connector",
        "connectors.aave_v3.decode",
        "connectors.aave_v3.deployments",
    ):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
    assert len(set(exported)) == len(exported)
