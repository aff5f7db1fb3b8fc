"""Morpho Blue deployments: the singleton ``Morpho`` contract of a chain and the markets to watch, as configuration.

Morpho Blue is one contract per chain holding every market; a market is named by its id,
``keccak256(abi.encode(marketParams))``. Markets are permissionless (thousands exist), so a deployment lists
the ones to read; the connector reads each market's parameters from ``idToMarketParams`` and checks that they
hash back to the id.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated

from pydantic import AfterValidator, field_validator

from connectors.errors import InvalidInputError
from connectors.morpho_blue.decode import normalize_market_id
from connectors.types import Address, Frozen

__all__ = [
    "DEPLOYMENTS",
    "MORPHO_BLUE_ADDRESS",
    "MORPHO_BLUE_ETHEREUM",
    "WSTETH_WETH_945",
    "MarketId",
    "MorphoDeployment",
    "get_deployment",
]

MarketId = Annotated[str, AfterValidator(normalize_market_id)]
"""``0x`` + 64 hex digits, stored lower-case."""

MORPHO_BLUE_ADDRESS = "0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb"
"""``Morpho`` on Ethereum mainnet (chain 1) — the same address on Base (8453), from the same deployer."""

WSTETH_WETH_945 = "0xc54d7acf14de29e0e5527cabd7a576506870346a78a11a6762e2cca66322ec41"
"""Ethereum: loan WETH, collateral wstETH, oracle 0x2a01EB9496094dA03c4E364Def50f5aD1280AD72, AdaptiveCurveIrm
0x870aC11D48B15DB9a138Cf899d20F13F79Ba00BC, LLTV 94.5% (the id is checked against these parameters in the tests)."""


class MorphoDeployment(Frozen):
    """One chain's Morpho and the markets to read there."""

    name: str
    chain_id: int
    morpho: Address
    markets: tuple[MarketId, ...]

    @field_validator("markets")
    @classmethod
    def _unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("a market is listed twice")
        return v


MORPHO_BLUE_ETHEREUM = MorphoDeployment(
    name="morpho_blue_ethereum", chain_id=1, morpho=MORPHO_BLUE_ADDRESS, markets=(WSTETH_WETH_945,)
)

DEPLOYMENTS: Mapping[str, MorphoDeployment] = MappingProxyType({d.name: d for d in (MORPHO_BLUE_ETHEREUM,)})


def get_deployment(name: str) -> MorphoDeployment:
    """The deployment called ``name``; :class:`InvalidInputError` listing the known names otherwise."""
    try:
        return DEPLOYMENTS[name]
    except KeyError:
        raise InvalidInputError(f"unknown Morpho Blue deployment {name!r}; known: {sorted(DEPLOYMENTS)}") from None
