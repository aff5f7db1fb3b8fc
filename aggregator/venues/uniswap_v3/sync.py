"""Uniswap v3 LP: from the connector's snapshot to each wallet's ranges — exact token amounts and fees at
the block, USD value at the block's oracle prices, and delta / gamma in each token for netting.

An LP position is never liquidated: its health factor is null; ``collateral_usd`` carries its value (what
it would return if closed now: principal plus uncollected fees). Each NFT yields one ``lp`` position per
token, whose ``extra`` holds the range, the fees and the Greeks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aggregator.venues.uniswap_v3.detail import UniswapHealthDetail, UniswapLegDetail, UniswapPoolDetail
from aggregator.views import PositionView, VenueHealth, VenueReading
from connectors.errors import OracleError
from connectors.uniswap_v3.models import LpPosition, PoolPositionState, PoolState, TickState, UniswapSnapshot
from riskcore.clmm import lp_usd_greeks
from riskcore.units import from_raw
from riskcore.venues.uniswap_v3.position import (
    PoolPositionParams,
    PositionAmounts,
    TickFeeGrowth,
    UniswapV3PoolParams,
    UniswapV3PositionParams,
    get_sqrt_ratio_at_tick,
    position_amounts,
)

__all__ = ["PoolIndex", "evaluate", "exact_amounts"]

Q96 = 2**96


@dataclass(frozen=True, slots=True)
class PoolIndex:
    """A pool's read ticks and range positions by key: looked up once per NFT, where scanning the pool's tuples
    cost O(ticks) an NFT — quadratic in the ranges held (thousands of bounds at 10,000 wallets)."""

    ticks: Mapping[int, TickState]
    ranges: Mapping[tuple[int, int], PoolPositionState]

    @classmethod
    def of(cls, pool: PoolState) -> PoolIndex:
        return cls({t.tick: t for t in pool.ticks}, {(r.tick_lower, r.tick_upper): r for r in pool.positions})


def exact_amounts(p: LpPosition, pool: PoolState, index: PoolIndex | None = None) -> PositionAmounts:
    """What ``decreaseLiquidity(full)`` and ``collect(max)`` would return for ``p`` at the snapshot's block
    (``index``: ``pool``'s, when the caller values many NFTs of it)."""
    if index is None:
        lower, upper = pool.tick_state(p.tick_lower), pool.tick_state(p.tick_upper)
        shared = pool.position_state(p.tick_lower, p.tick_upper)
    else:
        try:
            lower, upper = index.ticks[p.tick_lower], index.ticks[p.tick_upper]
            shared = index.ranges[(p.tick_lower, p.tick_upper)]
        except KeyError:  # the pool's own lookups name what was not read
            return exact_amounts(p, pool)
    return position_amounts(
        UniswapV3PositionParams(p.tick_lower, p.tick_upper, p.liquidity, p.fee_growth_inside0_last_x128,
                                p.fee_growth_inside1_last_x128, p.tokens_owed0, p.tokens_owed1),
        UniswapV3PoolParams(pool.sqrt_price_x96, pool.tick, pool.fee_growth_global0_x128,
                            pool.fee_growth_global1_x128),
        TickFeeGrowth(lower.fee_growth_outside0_x128, lower.fee_growth_outside1_x128),
        TickFeeGrowth(upper.fee_growth_outside0_x128, upper.fee_growth_outside1_x128),
        PoolPositionParams(shared.liquidity, shared.fee_growth_inside0_last_x128, shared.fee_growth_inside1_last_x128,
                           shared.tokens_owed0, shared.tokens_owed1),
    )


def range_prices(p: LpPosition, sqrt_price_x96: int, usd0: float, usd1: float) -> dict[str, object]:
    """The range's bounds and the pool's price as a trader reads them: the quote token per unit of the base token,
    the base being the pricier of the two (WETH/USDC reads "USDC per WETH" whichever is token0).

    The pool prices token0 in token1 as ``1.0001**tick`` raw units, i.e. ``1.0001**tick × 10**(d0 − d1)`` whole
    tokens; quoted the other way round the bounds swap.
    """
    scale = 10 ** (p.token0_decimals - p.token1_decimals)
    lower = 1.0001**p.tick_lower * scale
    upper = 1.0001**p.tick_upper * scale
    now = (sqrt_price_x96 / Q96) ** 2 * scale
    if usd0 >= usd1:
        base, quote = p.token0_symbol, p.token1_symbol
    else:
        base, quote = p.token1_symbol, p.token0_symbol
        lower, upper, now = 1 / upper, 1 / lower, 1 / now  # sqrtPriceX96 ≥ MIN_SQRT_RATIO > 0
    return {"range_base": base, "range_quote": quote, "range_lower": lower, "range_upper": upper, "range_price": now,
            "token0": p.token0_symbol, "token1": p.token1_symbol}


def _price(book: Mapping[str, float], token: str, symbol: str) -> float:
    if token not in book:
        raise OracleError(f"no USD price for {symbol or token} at this block")
    return book[token]


def evaluate(snapshot: UniswapSnapshot, venue: str, usd_prices: Mapping[str, float], *,
             detail: bool = True) -> VenueReading:
    """Every wallet's LP ranges valued at the block; USD prices come from the chain's price sources.
    ``detail=False`` leaves out the venue's detail (``extra`` empty: no Greeks, no range prices); every other field
    is as with it."""
    healths = []
    indexes: dict[str, PoolIndex] = {}
    for account in snapshot.accounts:
        positions: list[PositionView] = []
        value = 0.0
        delta: dict[str, float] = {}
        for p in account.positions:
            pool = snapshot.pool(p.pool)
            index = indexes.get(pool.address)
            if index is None:
                index = indexes[pool.address] = PoolIndex.of(pool)
            amounts = exact_amounts(p, pool, index)
            if not (amounts.total0_raw or amounts.total1_raw):
                continue  # a closed NFT with nothing left to collect
            p0 = _price(usd_prices, p.token0, p.token0_symbol)
            p1 = _price(usd_prices, p.token1, p.token1_symbol)
            fields: dict[str, object] | None = None
            deltas = (0.0, 0.0)
            if detail:
                greeks = lp_usd_greeks(
                    p.liquidity, pool.sqrt_price_x96 / Q96, get_sqrt_ratio_at_tick(p.tick_lower) / Q96,
                    get_sqrt_ratio_at_tick(p.tick_upper) / Q96, p.token0_decimals, p.token1_decimals, p0, p1,
                )
                deltas = (float(greeks.delta0), float(greeks.delta1))
                fields = {
                    "token_id": p.token_id, "pool": p.pool, "fee": p.fee,
                    "tick_lower": p.tick_lower, "tick_upper": p.tick_upper, "tick": pool.tick,
                    "in_range": p.tick_lower <= pool.tick < p.tick_upper, "liquidity": p.liquidity,
                    "gamma00": float(greeks.gamma00), "gamma01": float(greeks.gamma01),
                    "gamma11": float(greeks.gamma11), **range_prices(p, pool.sqrt_price_x96, p0, p1),
                }
            legs = (
                (p.token0, p.token0_symbol, p.token0_decimals, amounts.amount0_raw, amounts.fees0_raw, p0, deltas[0]),
                (p.token1, p.token1_symbol, p.token1_decimals, amounts.amount1_raw, amounts.fees1_raw, p1, deltas[1]),
            )
            for token, symbol, decimals, principal, fees, price, leg_delta in legs:
                total = principal + fees
                leg_value = from_raw(total, decimals) * price
                value += leg_value
                delta[symbol] = delta.get(symbol, 0.0) + leg_delta
                positions.append(PositionView(
                    asset=symbol, asset_address=token, decimals=decimals, side="lp", amount_raw=total,
                    amount=from_raw(total, decimals), price_usd=price, value_usd=leg_value, is_collateral=False,
                    market_key=p.pool,
                    # What only the owner's actions change: the NFT's range, liquidity and fees already owed to it.
                    state=(f"token={p.token_id};range={p.tick_lower}:{p.tick_upper};liquidity={p.liquidity};"
                           f"owed={p.tokens_owed0}:{p.tokens_owed1};"
                           f"growth={p.fee_growth_inside0_last_x128}:{p.fee_growth_inside1_last_x128}"),
                    extra={} if fields is None else UniswapLegDetail(
                        **fields, principal_raw=principal, fees_raw=fees, delta=leg_delta,
                        fees=from_raw(fees, decimals), fees_usd=from_raw(fees, decimals) * price).stored(),
                ))
        healths.append(VenueHealth(
            wallet=account.wallet, venue=venue, kind="lp", health_factor=None, health_factor_raw=None,
            onchain_health_factor_raw=None, matches_onchain=None, collateral_usd=value, debt_usd=0.0,
            liquidation_threshold=None, positions=tuple(positions),
            extra=UniswapHealthDetail(value_usd=value, delta=delta).stored() if detail else {},
        ))
    markets: dict[str, dict[str, object]] = {
        pool.address: UniswapPoolDetail(
            symbol=f"{_symbol(snapshot, pool.token0)}/{_symbol(snapshot, pool.token1)} {pool.fee}",
            fee=pool.fee, token0=pool.token0, token1=pool.token1).stored()
        for pool in snapshot.pools
    }
    return VenueReading(venue=venue, kind="lp", block=snapshot.block, healths=tuple(healths), markets=markets)


def _symbol(snapshot: UniswapSnapshot, token: str) -> str:
    return next((t.symbol for t in snapshot.tokens if t.address == token), token[:8])
