"""Where the dYdX v4 indexer lives (``{indexer_url}/v4/...``), as configuration."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from connectors.errors import InvalidInputError
from connectors.types import Frozen

__all__ = ["DEPLOYMENTS", "DYDX_MAINNET", "DYDX_TESTNET", "DydxDeployment", "get_deployment"]


class DydxDeployment(Frozen):
    """One dYdX network: a name and its indexer's base URL (without ``/v4``)."""

    name: str
    indexer_url: str


DYDX_MAINNET = DydxDeployment(name="dydx_mainnet", indexer_url="https://indexer.dydx.trade")
"""The deployment by DYDX token holders (docs, *Indexer API*)."""
DYDX_TESTNET = DydxDeployment(name="dydx_testnet", indexer_url="https://indexer.v4testnet.dydx.exchange")

DEPLOYMENTS: Mapping[str, DydxDeployment] = MappingProxyType({d.name: d for d in (DYDX_MAINNET, DYDX_TESTNET)})


def get_deployment(name: str) -> DydxDeployment:
    """The deployment called ``name``; :class:`InvalidInputError` listing the known names otherwise."""
    try:
        return DEPLOYMENTS[name]
    except KeyError:
        raise InvalidInputError(f"unknown dYdX deployment {name!r}; known: {sorted(DEPLOYMENTS)}") from None
