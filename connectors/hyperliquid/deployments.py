"""Where Hyperliquid's info API lives (``POST {base_url}/info``), as configuration."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from connectors.errors import InvalidInputError
from connectors.types import Frozen

__all__ = ["DEPLOYMENTS", "HYPERLIQUID_MAINNET", "HYPERLIQUID_TESTNET", "HyperliquidDeployment", "get_deployment"]


class HyperliquidDeployment(Frozen):
    """One Hyperliquid network: a name and the base URL of its API servers."""

    name: str
    base_url: str


HYPERLIQUID_MAINNET = HyperliquidDeployment(name="hyperliquid_mainnet", base_url="https://api.hyperliquid.xyz")
HYPERLIQUID_TESTNET = HyperliquidDeployment(name="hyperliquid_testnet", base_url="https://api.hyperliquid-testnet.xyz")

DEPLOYMENTS: Mapping[str, HyperliquidDeployment] = MappingProxyType(
    {d.name: d for d in (HYPERLIQUID_MAINNET, HYPERLIQUID_TESTNET)}
)


def get_deployment(name: str) -> HyperliquidDeployment:
    """The deployment called ``name``; :class:`InvalidInputError` listing the known names otherwise."""
    try:
        return DEPLOYMENTS[name]
    except KeyError:
        raise InvalidInputError(f"unknown Hyperliquid deployment {name!r}; known: {sorted(DEPLOYMENTS)}") from None
