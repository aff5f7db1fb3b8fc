"""Typed boundary models of the Uniswap v3 connector.

Every on-chain integer stays an ``int`` as the contracts store it (``*_x96`` Q64.96, ``*_x128`` Q128.128 fee
growth, raw token units for ``tokens_owed*``); ``riskcore.venues.uniswap_v3.position`` turns them into amounts, fees and
exposure.
"""

from __future__ import annotations

from connectors.types import Address, BlockRef, Frozen

__all__ = [
    "LpPosition",
    "PoolPositionState",
    "PoolState",
    "TickState",
    "UniswapAccount",
    "UniswapSnapshot",
    "UniswapToken",
]


class UniswapToken(Frozen):
    """An ERC-20 of a pool."""

    address: Address
    symbol: str
    """``symbol()`` (string, or bytes32 for old tokens); empty when the token has none."""
    decimals: int


class TickState(Frozen):
    """``pool.ticks(tick)`` of a position bound (all zero when the tick is not initialized)."""

    tick: int
    liquidity_gross: int
    liquidity_net: int
    fee_growth_outside0_x128: int
    fee_growth_outside1_x128: int
    initialized: bool


class PoolPositionState(Frozen):
    """``pool.positions(keccak256(positionManager, tickLower, tickUpper))``: the pool's own position of the
    manager over one range, shared by every NFT of that range (``pool.collect`` pays from its ``tokens_owed``)."""

    tick_lower: int
    tick_upper: int
    liquidity: int
    fee_growth_inside0_last_x128: int
    fee_growth_inside1_last_x128: int
    tokens_owed0: int
    tokens_owed1: int


class PoolState(Frozen):
    """A pool at the snapshot's block, with the ticks and manager positions of the ranges read."""

    address: Address
    token0: Address
    token1: Address
    fee: int
    """Fee tier in hundredths of a bip (500 = 0.05%)."""
    sqrt_price_x96: int
    """``slot0.sqrtPriceX96``: sqrt(token1_raw / token0_raw) as Q64.96."""
    tick: int
    """``slot0.tick``: the current tick (the pool branches on it, not on the sqrt price)."""
    liquidity: int
    """``pool.liquidity()``: the liquidity in range now."""
    fee_growth_global0_x128: int
    fee_growth_global1_x128: int
    ticks: tuple[TickState, ...]
    """The bounds of the snapshot's positions in this pool, ascending."""
    positions: tuple[PoolPositionState, ...]
    """The manager's pool positions over the snapshot's ranges in this pool."""

    def tick_state(self, tick: int) -> TickState:
        """The read state of ``tick``; KeyError when it was not read."""
        for t in self.ticks:
            if t.tick == tick:
                return t
        raise KeyError(f"tick {tick} of pool {self.address} was not read")

    def position_state(self, tick_lower: int, tick_upper: int) -> PoolPositionState:
        """The manager's pool position over ``[tick_lower, tick_upper)``; KeyError when it was not read."""
        for p in self.positions:
            if p.tick_lower == tick_lower and p.tick_upper == tick_upper:
                return p
        raise KeyError(f"range [{tick_lower}, {tick_upper}) of pool {self.address} was not read")


class LpPosition(Frozen):
    """One position-manager NFT (``NonfungiblePositionManager.positions(tokenId)``) and its pool's identity."""

    token_id: int
    owner: Address
    pool: Address
    token0: Address
    token1: Address
    token0_symbol: str
    token1_symbol: str
    token0_decimals: int
    token1_decimals: int
    fee: int
    tick_lower: int
    tick_upper: int
    liquidity: int
    fee_growth_inside0_last_x128: int
    """The range's fee growth inside as of the NFT's last action (Q128.128)."""
    fee_growth_inside1_last_x128: int
    tokens_owed0: int
    """Owed to the NFT as of its last action (fees, and principal already removed), raw token0 units."""
    tokens_owed1: int
    nonce: int
    operator: Address


class UniswapAccount(Frozen):
    """One wallet's positions (every NFT it owns, including closed ones with zero liquidity)."""

    wallet: Address
    positions: tuple[LpPosition, ...]


class UniswapSnapshot(Frozen):
    """Everything read for a batch of wallets in one block."""

    block: BlockRef
    deployment: str
    position_manager: Address
    factory: Address
    pools: tuple[PoolState, ...]
    tokens: tuple[UniswapToken, ...]
    accounts: tuple[UniswapAccount, ...]

    def pool(self, address: str) -> PoolState:
        """The pool at ``address`` (any case); KeyError when the snapshot has none there."""
        for p in self.pools:
            if p.address.lower() == address.lower():
                return p
        raise KeyError(f"no pool {address} in the snapshot")
