"""Every connectors module declares its public names in ``__all__``, and each of them exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import connectors
from connectors.registry import VENUES

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
        "connectors.evm.program",
        "connectors.base",
        "connectors.http",
    ):
        assert name in MODULES




@pytest.mark.parametrize("venue", VENUES)
def test_every_venue_has_the_same_shape(venue: str) -> None:
    """One folder of the same shape per venue, a connector class declaring its capabilities, one
    conformance subclass."""
    from pathlib import Path

    from connectors.base import Capabilities

    for part in ("models", "decode", "deployments", "connector"):
        assert f"connectors.{venue}.{part}" in MODULES, f"{venue} lacks {part}.py"
    module = importlib.import_module(f"connectors.{venue}.connector")
    # One class, whatever names it goes by: ``CONNECTOR`` is the registry's alias of the class itself.
    classes = list(
        dict.fromkeys(c for c in vars(module).values() if isinstance(getattr(c, "capabilities", None), Capabilities))
    )
    assert len(classes) == 1, f"connectors.{venue}.connector must define one connector class"
    assert module.CONNECTOR is classes[0], f"connectors.{venue}.connector must name its class CONNECTOR"
    assert classes[0].capabilities.venue_type == venue
    tests_dir = Path(__file__).resolve().parent
    assert (tests_dir / f"test_{venue.split('_')[0]}_conformance.py").is_file()


@pytest.mark.parametrize("name", MODULES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
    assert len(set(exported)) == len(exported)
