"""Known Aave v3 (and Aave v3 fork) deployments, each named by its ``PoolAddressesProvider``.

The connector discovers everything else (Pool, AaveOracle, data provider) from the provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from connectors.errors import InvalidInputError
from connectors.types import Address, Frozen

__all__ = ["AAVE_V3_ETHEREUM", "DEPLOYMENTS", "SPARK_ETHEREUM", "AaveDeployment", "get_deployment"]


class AaveDeployment(Frozen):
    """One market: a name, its chain, its ``PoolAddressesProvider``."""

    name: str
    chain_id: int
    pool_addresses_provider: Address


AAVE_V3_ETHEREUM = AaveDeployment(
    name="aave_v3_ethereum",
    chain_id=1,
    pool_addresses_provider="0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e",
)
"""Aave v3 Ethereum core market (Pool 0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2 behind it)."""

SPARK_ETHEREUM = AaveDeployment(
    name="spark_ethereum",
    chain_id=1,
    pool_addresses_provider="0x02C3eA4e34C0cBd694D2adFa2c690EECbC1793eE",
)
"""SparkLend on Ethereum (Pool 0xC13e21B648A5Ee794902342038FF3aDAB66BE987 behind it)."""

DEPLOYMENTS: Mapping[str, AaveDeployment] = MappingProxyType({d.name: d for d in (AAVE_V3_ETHEREUM, SPARK_ETHEREUM)})


def get_deployment(name: str) -> AaveDeployment:
    """The deployment called ``name``; :class:`InvalidInputError` listing the known names otherwise."""
    try:
        return DEPLOYMENTS[name]
    except KeyError:
        raise InvalidInputError(f"unknown Aave deployment {name!r}; known: {sorted(DEPLOYMENTS)}") from None
