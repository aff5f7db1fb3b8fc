"""Uniswap v3: an LP position's amounts and fees recomputed from its cached NFT state and one block's pool state.

A position-manager NFT no event touched (``IncreaseLiquidity``, ``DecreaseLiquidity``, ``Collect``,
``Transfer``) keeps its range, liquidity, fee growth inside as of its last action and tokens owed; what moves is
its pool: ``slot0`` (price and tick, with every swap), the global fee growths, the fee growth outside its two
bound ticks (when the price crosses them) and the manager's shared pool position of its range (when another NFT
of the same range acts). From the cached NFT and those market figures read at the block, the amounts
``decreaseLiquidity`` (full liquidity) and the fees ``collect(max, max)`` would return are exact
(:func:`~riskcore.venues.uniswap_v3.position.position_amounts`: ``SqrtPriceMath`` rounding down for a burn, fee
growth inside by ``Tick.getFeeGrowthInside`` modulo 2**256, fees ``mulDiv(Δgrowth, liquidity, 2**128)``).

Pure integers: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from riskcore.venues.uniswap_v3.position import (
    PoolPositionParams,
    PositionAmounts,
    TickFeeGrowth,
    UniswapV3PoolParams,
    UniswapV3PositionParams,
    position_amounts,
)

__all__ = ["market_ranges", "recompute_amounts"]


def market_ranges(positions: Iterable[tuple[str, int, int]]) -> dict[str, list[tuple[int, int]]]:
    """The (tick lower, tick upper) ranges whose market state must be read, per pool, ascending and each once.

    Parameters
    ----------
    positions : iterable of (pool address, tick lower, tick upper)
        One per cached NFT.

    Returns
    -------
    dict of pool address to list of (int, int)
        Grows with the distinct pools and ranges, not with the wallets holding them.
    """
    out: dict[str, set[tuple[int, int]]] = {}
    for pool, lower, upper in positions:
        if lower >= upper:
            raise ValueError(f"pool {pool}: tick lower {lower} is not below tick upper {upper}")
        out.setdefault(pool, set()).add((lower, upper))
    return {pool: sorted(ranges) for pool, ranges in out.items()}


def recompute_amounts(
    position: UniswapV3PositionParams,
    pool: UniswapV3PoolParams,
    lower: TickFeeGrowth,
    upper: TickFeeGrowth,
    shared: PoolPositionParams,
) -> PositionAmounts:
    """A cached NFT (``position``, as read at an earlier block) valued at the block of ``pool`` / ``lower`` /
    ``upper`` / ``shared`` (all read at that block): raw token amounts and fees, exactly what the position
    manager would pay (see :func:`~riskcore.venues.uniswap_v3.position.position_amounts`)."""
    return position_amounts(position, pool, lower, upper, shared)
