"""Uniswap v3 liquidity positions: amounts and fees exactly as the contracts compute them, then value and exposure.

Two forms, as elsewhere in ``riskcore``:

* the exact integer path — bit-exact ports of ``TickMath.getSqrtRatioAtTick``, ``FullMath.mulDiv`` /
  ``mulDivRoundingUp``, ``SqrtPriceMath.getAmount0Delta`` / ``getAmount1Delta``, ``Tick.getFeeGrowthInside``
  (uint256 wraparound) and the fee accrual of ``Position.update`` / ``NonfungiblePositionManager``
  (``uint128`` truncation and wraparound, as Solidity 0.7.6 does without checked arithmetic).
  :func:`position_amounts` gives what ``NonfungiblePositionManager.decreaseLiquidity`` (the full liquidity)
  and ``collect`` (``amount0Max = amount1Max = 2**128 - 1``) would return at the block, to the wei.
* the float path (numpy) is the generic concentrated-liquidity math of :mod:`riskcore.clmm` — principal
  amounts, value, and the price exposure of many positions under many price scenarios.

Units and conventions
---------------------
``raw`` amounts are token base units (wei). ``sqrt_price_x96`` is the pool's Q64.96
``sqrt(token1_raw / token0_raw)``; float functions take ``sqrt_price = sqrt_price_x96 / 2**96`` (the square
root of the raw price). The *human* price of the pool is

    P = (sqrt_price)**2 * 10**(decimals0 - decimals1)        [token1 per token0]

and the position's value in token1, ``V(P) = x(P) * P + y(P)`` (``x``, ``y`` the token0 and token1 amounts
in human units). Because the pool's curve satisfies ``y'(P) = -P * x'(P)``:

* **delta** ``dV/dP = x(P)`` — the token0 the position holds (token0 units), everywhere: in range, below
  the range (all token0, ``V = x * P``) and above it (``x = 0``, ``V`` constant);
* **gamma** ``d²V/dP² = x'(P) = -L_h / (2 * P**1.5)`` strictly inside the range and 0 outside, with the
  human liquidity ``L_h = L / 10**((decimals0 + decimals1) / 2)``; units token0 per (token1 per token0).
  Gamma jumps at the range bounds (the second derivative does not exist there).

In US dollars, with ``p0``, ``p1`` the tokens' USD prices and the pool arbitraged to ``P = p0 / p1``,
``V_usd(p0, p1) = x * p0 + y * p1`` has ``∂V/∂p0 = x`` and ``∂V/∂p1 = y`` (the held amounts are the
deltas for netting against other venues) and the Hessian ``∂²V/∂p0² = γ / p1``,
``∂²V/∂p0∂p1 = -P γ / p1``, ``∂²V/∂p1² = P² γ / p1`` (units token_i × token_j per USD).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "MAX_SQRT_RATIO",
    "MAX_TICK",
    "MIN_SQRT_RATIO",
    "MIN_TICK",
    "Q96",
    "Q128",
    "UINT128_MAX",
    "UINT256_MAX",
    "PoolPositionParams",
    "PositionAmounts",
    "TickFeeGrowth",
    "UniswapV3PoolParams",
    "UniswapV3PositionParams",
    "accrue_fees",
    "amounts_for_burn",
    "fee_growth_inside",
    "get_amount0_delta",
    "get_amount1_delta",
    "get_amounts_for_liquidity",
    "get_sqrt_ratio_at_tick",
    "get_tick_at_sqrt_ratio",
    "mul_div",
    "mul_div_rounding_up",
    "position_amounts",
    "position_value_usd",
]

MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
Q96 = 1 << 96
Q128 = 1 << 128
UINT128_MAX = (1 << 128) - 1
UINT256_MAX = (1 << 256) - 1
_M256 = 1 << 256
_M128 = 1 << 128

# TickMath.getSqrtRatioAtTick: 1 / sqrt(1.0001) ** (2 ** i) as Q128.128, for bits 1 << 1 … 1 << 19.
_TICK_FACTORS = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)


# --- FullMath ----------------------------------------------------------------------------------------------
def mul_div(a: int, b: int, denominator: int) -> int:
    """``floor(a * b / denominator)`` (``FullMath.mulDiv``); raises where the contract reverts.

    Parameters
    ----------
    a, b : int
        uint256 operands.
    denominator : int
        Nonzero uint256.

    Raises
    ------
    ZeroDivisionError
        ``denominator == 0``.
    OverflowError
        The result does not fit in 256 bits.
    """
    if denominator == 0:
        raise ZeroDivisionError("mulDiv by zero")
    result = a * b // denominator
    if result > UINT256_MAX:
        raise OverflowError("mulDiv result overflows uint256")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """``ceil(a * b / denominator)`` (``FullMath.mulDivRoundingUp``); raises where the contract reverts."""
    result = mul_div(a, b, denominator)
    if (a * b) % denominator:
        if result >= UINT256_MAX:
            raise OverflowError("mulDivRoundingUp result overflows uint256")
        result += 1
    return result


def _div_rounding_up(x: int, y: int) -> int:
    """``UnsafeMath.divRoundingUp`` (division by zero is 0 in the EVM; callers never divide by zero)."""
    return x // y + (1 if x % y else 0)


# --- TickMath ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=1 << 16)
def get_sqrt_ratio_at_tick(tick: int) -> int:
    """``sqrt(1.0001 ** tick) * 2**96`` as ``TickMath.getSqrtRatioAtTick`` computes it (bit-exact).

    Memoized (a range's two bounds are valued at every block: 60,280 calls, 0.61 s of a 2,000-wallet block
    benchmark's six blocks, 10 µs each).

    Parameters
    ----------
    tick : int
        In ``[MIN_TICK, MAX_TICK]``.

    Returns
    -------
    int
        The Q64.96 sqrt price (uint160), rounded up from Q128.128 as the contract does.
    """
    abs_tick = -tick if tick < 0 else tick
    if abs_tick > MAX_TICK:
        raise ValueError(f"tick {tick} is outside [{MIN_TICK}, {MAX_TICK}] (TickMath reverts 'T')")
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if abs_tick & 0x1 else 0x100000000000000000000000000000000
    for bit, factor in _TICK_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = UINT256_MAX // ratio
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """The greatest tick whose :func:`get_sqrt_ratio_at_tick` is ``<= sqrt_price_x96``.

    This is the specification of ``TickMath.getTickAtSqrtRatio`` (which computes it with a fixed-point
    logarithm); found here by bisection over :func:`get_sqrt_ratio_at_tick`, so equal by construction.
    """
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise ValueError(f"sqrt price {sqrt_price_x96} is outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO) (reverts 'R')")
    lo, hi = MIN_TICK, MAX_TICK
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if get_sqrt_ratio_at_tick(mid) <= sqrt_price_x96:
            lo = mid
        else:
            hi = mid - 1
    return lo


# --- SqrtPriceMath / LiquidityAmounts ---------------------------------------------------------------------
def get_amount0_delta(sqrt_a_x96: int, sqrt_b_x96: int, liquidity: int, round_up: bool) -> int:
    """``SqrtPriceMath.getAmount0Delta``: ``L * (sqrt_b - sqrt_a) / (sqrt_b * sqrt_a)`` in token0 raw units.

    Parameters
    ----------
    sqrt_a_x96, sqrt_b_x96 : int
        Q64.96 sqrt prices, in either order; the smaller must be positive.
    liquidity : int
        uint128.
    round_up : bool
        True as when minting (the pool is paid), False as when burning (the pool pays).
    """
    if sqrt_a_x96 > sqrt_b_x96:
        sqrt_a_x96, sqrt_b_x96 = sqrt_b_x96, sqrt_a_x96
    if sqrt_a_x96 <= 0:
        raise ValueError("getAmount0Delta needs a positive sqrt price")
    numerator1 = liquidity << 96
    numerator2 = sqrt_b_x96 - sqrt_a_x96
    if round_up:
        return _div_rounding_up(mul_div_rounding_up(numerator1, numerator2, sqrt_b_x96), sqrt_a_x96)
    return mul_div(numerator1, numerator2, sqrt_b_x96) // sqrt_a_x96


def get_amount1_delta(sqrt_a_x96: int, sqrt_b_x96: int, liquidity: int, round_up: bool) -> int:
    """``SqrtPriceMath.getAmount1Delta``: ``L * (sqrt_b - sqrt_a)`` in token1 raw units (rounding as named)."""
    if sqrt_a_x96 > sqrt_b_x96:
        sqrt_a_x96, sqrt_b_x96 = sqrt_b_x96, sqrt_a_x96
    if round_up:
        return mul_div_rounding_up(liquidity, sqrt_b_x96 - sqrt_a_x96, Q96)
    return mul_div(liquidity, sqrt_b_x96 - sqrt_a_x96, Q96)


def amounts_for_burn(
    sqrt_price_x96: int, tick: int, tick_lower: int, tick_upper: int, liquidity: int
) -> tuple[int, int]:
    """Token amounts ``UniswapV3Pool.burn(tick_lower, tick_upper, liquidity)`` releases (``_modifyPosition`` with
    a negative delta: rounding down), so what ``decreaseLiquidity`` returns.

    The branch is on the pool's current ``tick`` (``slot0.tick``), not on the sqrt price, as in the pool.

    Parameters
    ----------
    sqrt_price_x96, tick : int
        ``slot0.sqrtPriceX96`` and ``slot0.tick``.
    tick_lower, tick_upper : int
        The position's range.
    liquidity : int
        The liquidity removed (uint128).

    Returns
    -------
    (amount0_raw, amount1_raw) : tuple of int
    """
    if liquidity == 0:
        return 0, 0
    sqrt_lower = get_sqrt_ratio_at_tick(tick_lower)
    sqrt_upper = get_sqrt_ratio_at_tick(tick_upper)
    if tick < tick_lower:
        return get_amount0_delta(sqrt_lower, sqrt_upper, liquidity, False), 0
    if tick < tick_upper:
        return (
            get_amount0_delta(sqrt_price_x96, sqrt_upper, liquidity, False),
            get_amount1_delta(sqrt_lower, sqrt_price_x96, liquidity, False),
        )
    return 0, get_amount1_delta(sqrt_lower, sqrt_upper, liquidity, False)


def get_amounts_for_liquidity(sqrt_price_x96: int, sqrt_a_x96: int, sqrt_b_x96: int, liquidity: int) -> tuple[int, int]:
    """``LiquidityAmounts.getAmountsForLiquidity`` (periphery): branches on the sqrt price, rounds down."""
    if sqrt_a_x96 > sqrt_b_x96:
        sqrt_a_x96, sqrt_b_x96 = sqrt_b_x96, sqrt_a_x96
    if sqrt_price_x96 <= sqrt_a_x96:
        return mul_div(liquidity << 96, sqrt_b_x96 - sqrt_a_x96, sqrt_b_x96) // sqrt_a_x96, 0
    if sqrt_price_x96 < sqrt_b_x96:
        return (
            mul_div(liquidity << 96, sqrt_b_x96 - sqrt_price_x96, sqrt_b_x96) // sqrt_price_x96,
            mul_div(liquidity, sqrt_price_x96 - sqrt_a_x96, Q96),
        )
    return 0, mul_div(liquidity, sqrt_b_x96 - sqrt_a_x96, Q96)


# --- fees --------------------------------------------------------------------------------------------------
def fee_growth_inside(
    tick_lower: int,
    tick_upper: int,
    tick_current: int,
    fee_growth_global_x128: int,
    lower_outside_x128: int,
    upper_outside_x128: int,
) -> int:
    """``Tick.getFeeGrowthInside`` for one token: fee growth per unit of liquidity inside the range, Q128.128,
    with the contract's uint256 wraparound (the result is meaningful only as a difference mod 2**256).

    Parameters
    ----------
    tick_lower, tick_upper, tick_current : int
    fee_growth_global_x128 : int
        ``pool.feeGrowthGlobal{0,1}X128``.
    lower_outside_x128, upper_outside_x128 : int
        ``pool.ticks(tick).feeGrowthOutside{0,1}X128`` of the two bounds.
    """
    below = lower_outside_x128 if tick_current >= tick_lower else fee_growth_global_x128 - lower_outside_x128
    above = upper_outside_x128 if tick_current < tick_upper else fee_growth_global_x128 - upper_outside_x128
    return (fee_growth_global_x128 - below - above) % _M256


def accrue_fees(tokens_owed: int, liquidity: int, fee_growth_inside_x128: int, fee_growth_inside_last_x128: int) -> int:
    """``tokensOwed += uint128(FullMath.mulDiv(inside - insideLast, liquidity, Q128))`` with the subtraction
    mod 2**256 and the ``uint128`` cast and sum wrapping mod 2**128 (Solidity 0.7.6, no checked arithmetic).

    Returns
    -------
    int
        The new ``tokensOwed`` (uint128), raw token units.
    """
    growth = (fee_growth_inside_x128 - fee_growth_inside_last_x128) % _M256
    return (tokens_owed + mul_div(growth, liquidity, Q128) % _M128) % _M128


@dataclass(frozen=True, slots=True)
class UniswapV3PoolParams:
    """A pool's state at one block, as the position math needs it (``slot0`` and the global fee growths)."""

    sqrt_price_x96: int
    tick: int
    fee_growth_global0_x128: int
    fee_growth_global1_x128: int


@dataclass(frozen=True, slots=True)
class TickFeeGrowth:
    """``pool.ticks(tick).feeGrowthOutside{0,1}X128`` of one initialized tick."""

    fee_growth_outside0_x128: int
    fee_growth_outside1_x128: int


@dataclass(frozen=True, slots=True)
class UniswapV3PositionParams:
    """One position-manager NFT (``NonfungiblePositionManager.positions(tokenId)``); integers as stored."""

    tick_lower: int
    tick_upper: int
    liquidity: int
    fee_growth_inside0_last_x128: int
    fee_growth_inside1_last_x128: int
    tokens_owed0: int
    tokens_owed1: int


@dataclass(frozen=True, slots=True)
class PoolPositionParams:
    """The pool's own position of the position manager over one range (``pool.positions(key)``).

    Every NFT of that range shares it; ``pool.collect`` pays at most its ``tokensOwed``, which can be a few
    wei short of the sum the NFTs are owed (the contract's comment: "a few less wei than expected").
    """

    liquidity: int
    fee_growth_inside0_last_x128: int
    fee_growth_inside1_last_x128: int
    tokens_owed0: int
    tokens_owed1: int


@dataclass(frozen=True, slots=True)
class PositionAmounts:
    """A position's exact figures at one block, raw token units."""

    amount0_raw: int
    """Token0 ``decreaseLiquidity(full liquidity)`` returns (the principal at the pool's price, rounded down)."""
    amount1_raw: int
    fees0_raw: int
    """Token0 ``collect(max, max)`` returns: tokens owed plus fees accrued to the block (capped by the pool)."""
    fees1_raw: int
    owed0_raw: int
    """The position manager's ``tokensOwed0`` after the poke (before the pool's cap; usually ``fees0_raw``)."""
    owed1_raw: int
    fee_growth_inside0_x128: int
    """The range's current fee growth inside (Q128.128, mod 2**256)."""
    fee_growth_inside1_x128: int

    @property
    def total0_raw(self) -> int:
        return self.amount0_raw + self.fees0_raw

    @property
    def total1_raw(self) -> int:
        return self.amount1_raw + self.fees1_raw


def position_amounts(
    position: UniswapV3PositionParams,
    pool: UniswapV3PoolParams,
    lower: TickFeeGrowth,
    upper: TickFeeGrowth,
    pool_position: PoolPositionParams | None = None,
) -> PositionAmounts:
    """What ``decreaseLiquidity`` of the full liquidity and ``collect(2**128-1, 2**128-1)`` return, each
    called alone at the pool's state.

    Parameters
    ----------
    position : UniswapV3PositionParams
        The NFT's stored state.
    pool : UniswapV3PoolParams
    lower, upper : TickFeeGrowth
        The fee growth outside the range's two bound ticks.
    pool_position : PoolPositionParams, optional
        The pool's aggregate position of the manager over the range; when given, the fees are capped at
        what ``pool.collect`` can pay after the same poke, so they equal ``collect`` exactly even when several
        NFTs share the range.

    Returns
    -------
    PositionAmounts
        Raw token units; amounts are (0, 0) for a position without liquidity (whose ``decreaseLiquidity``
        reverts on-chain).
    """
    inside0 = fee_growth_inside(
        position.tick_lower, position.tick_upper, pool.tick, pool.fee_growth_global0_x128,
        lower.fee_growth_outside0_x128, upper.fee_growth_outside0_x128,
    )
    inside1 = fee_growth_inside(
        position.tick_lower, position.tick_upper, pool.tick, pool.fee_growth_global1_x128,
        lower.fee_growth_outside1_x128, upper.fee_growth_outside1_x128,
    )
    amount0, amount1 = amounts_for_burn(
        pool.sqrt_price_x96, pool.tick, position.tick_lower, position.tick_upper, position.liquidity
    )
    owed0, owed1 = position.tokens_owed0, position.tokens_owed1
    if position.liquidity > 0:  # collect pokes the pool (burn 0) only for a position with liquidity
        owed0 = accrue_fees(owed0, position.liquidity, inside0, position.fee_growth_inside0_last_x128)
        owed1 = accrue_fees(owed1, position.liquidity, inside1, position.fee_growth_inside1_last_x128)
    fees0, fees1 = owed0, owed1
    if pool_position is not None:
        pool_owed0, pool_owed1 = pool_position.tokens_owed0, pool_position.tokens_owed1
        if position.liquidity > 0:
            pool_owed0 = accrue_fees(pool_owed0, pool_position.liquidity, inside0,
                                     pool_position.fee_growth_inside0_last_x128)
            pool_owed1 = accrue_fees(pool_owed1, pool_position.liquidity, inside1,
                                     pool_position.fee_growth_inside1_last_x128)
        fees0, fees1 = min(fees0, pool_owed0), min(fees1, pool_owed1)
    return PositionAmounts(
        amount0_raw=amount0,
        amount1_raw=amount1,
        fees0_raw=fees0,
        fees1_raw=fees1,
        owed0_raw=owed0,
        owed1_raw=owed1,
        fee_growth_inside0_x128=inside0,
        fee_growth_inside1_x128=inside1,
    )


def position_value_usd(
    amounts: PositionAmounts, decimals0: int, decimals1: int, price0_usd: float, price1_usd: float,
    *, include_fees: bool = True,
) -> float:
    """USD value of a position's exact amounts:
    ``(amount0 [+ fees0]) / 10**d0 * p0 + (amount1 [+ fees1]) / 10**d1 * p1``.

    Parameters
    ----------
    amounts : PositionAmounts
        From :func:`position_amounts` (raw token units).
    decimals0, decimals1 : int
    price0_usd, price1_usd : float
        USD per whole token.
    include_fees : bool
        Add what ``collect`` would pay (fees and tokens owed) to the principal.
    """
    x = amounts.total0_raw if include_fees else amounts.amount0_raw
    y = amounts.total1_raw if include_fees else amounts.amount1_raw
    scale0: int = 10**decimals0
    scale1: int = 10**decimals1
    return x / scale0 * price0_usd + y / scale1 * price1_usd
