"""Known Uniswap v3 deployments: the NonfungiblePositionManager whose NFTs are read, and its factory.

Pool addresses are computed off-chain with CREATE2 (``PoolAddress.computeAddress``) from the factory and the
pool init code hash — the keccak256 of ``UniswapV3Pool``'s creation code of ``@uniswap/v3-core`` 1.0.x,
the same on every chain the canonical contracts are deployed on. A fork with other pool bytecode sets its
own hash, or ``None`` to ask ``factory.getPool`` instead (one more round trip).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import field_validator

from connectors.errors import InvalidInputError
from connectors.types import Address, Frozen

__all__ = [
    "DEPLOYMENTS",
    "POOL_INIT_CODE_HASH",
    "UNISWAP_V3_ARBITRUM",
    "UNISWAP_V3_BASE",
    "UNISWAP_V3_ETHEREUM",
    "UNISWAP_V3_OPTIMISM",
    "UNISWAP_V3_POLYGON",
    "UniswapV3Deployment",
    "get_deployment",
]

POOL_INIT_CODE_HASH = "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"
"""``PoolAddress.POOL_INIT_CODE_HASH`` of ``@uniswap/v3-periphery`` (keccak256 of the v3-core 1.0.x pool's
creation code; checked against the npm artifact in the tests)."""


class UniswapV3Deployment(Frozen):
    """One Uniswap v3 deployment: a name, its chain, the position manager and the factory."""

    name: str
    chain_id: int
    position_manager: Address
    """``NonfungiblePositionManager``: the ERC-721 whose tokens are the positions."""
    factory: Address
    """``UniswapV3Factory``; checked against ``position_manager.factory()`` on every read."""
    pool_init_code_hash: str | None = POOL_INIT_CODE_HASH
    """CREATE2 init code hash of the pools (0x + 64 hex); None: look pools up with ``factory.getPool``."""

    @field_validator("pool_init_code_hash")
    @classmethod
    def _check_hash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        body = value[2:] if value.startswith("0x") else ""
        if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
            raise ValueError(f"pool_init_code_hash must be 0x + 64 hex digits, got {value!r}")
        return "0x" + body.lower()


_MAINNET_NPM = "0xC36442b4a4522E871399CD717aBDD847Ab11FE88"
_MAINNET_FACTORY = "0x1F98431c8aD98523631AE4a59f267346ea31F984"

UNISWAP_V3_ETHEREUM = UniswapV3Deployment(
    name="uniswap_v3_ethereum", chain_id=1, position_manager=_MAINNET_NPM, factory=_MAINNET_FACTORY
)
"""Ethereum mainnet (Uniswap's ``deploys.md``: the same two addresses on Arbitrum, Optimism and Polygon)."""
UNISWAP_V3_ARBITRUM = UniswapV3Deployment(
    name="uniswap_v3_arbitrum", chain_id=42161, position_manager=_MAINNET_NPM, factory=_MAINNET_FACTORY
)
UNISWAP_V3_OPTIMISM = UniswapV3Deployment(
    name="uniswap_v3_optimism", chain_id=10, position_manager=_MAINNET_NPM, factory=_MAINNET_FACTORY
)
UNISWAP_V3_POLYGON = UniswapV3Deployment(
    name="uniswap_v3_polygon", chain_id=137, position_manager=_MAINNET_NPM, factory=_MAINNET_FACTORY
)
UNISWAP_V3_BASE = UniswapV3Deployment(
    name="uniswap_v3_base",
    chain_id=8453,
    position_manager="0x03a520b32C04BF3bEEf7BEb72E919cf822Ed34f1",
    factory="0x33128a8fC17869897dcE68Ed026d694621f6FDfD",
)
"""Base (docs.uniswap.org, Base deployments)."""

DEPLOYMENTS: Mapping[str, UniswapV3Deployment] = MappingProxyType(
    {
        d.name: d
        for d in (UNISWAP_V3_ETHEREUM, UNISWAP_V3_ARBITRUM, UNISWAP_V3_OPTIMISM, UNISWAP_V3_POLYGON, UNISWAP_V3_BASE)
    }
)


def get_deployment(name: str) -> UniswapV3Deployment:
    """The deployment called ``name``; :class:`InvalidInputError` listing the known names otherwise."""
    try:
        return DEPLOYMENTS[name]
    except KeyError:
        raise InvalidInputError(f"unknown Uniswap v3 deployment {name!r}; known: {sorted(DEPLOYMENTS)}") from None
