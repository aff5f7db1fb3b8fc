"""Morpho Blue position health, exactly as ``Morpho.sol`` (v1.0.0) computes it.

Two forms:

* The exact integer path. It repeats the protocol's own arithmetic with its own rounding:

  - ``SharesMathLib`` (virtual shares 1e6, virtual assets 1): :func:`to_assets_down` / :func:`to_assets_up` /
    :func:`to_shares_down` / :func:`to_shares_up`;
  - ``Morpho._accrueInterest``: :func:`accrue_interest` (``MathLib.wTaylorCompounded`` of the IRM's per-second
    rate over ``block.timestamp - lastUpdate``, interest added to both totals, the fee minted as supply shares);
  - ``Morpho._isHealthy``: ``borrowed = borrowShares.toAssetsUp(totalBorrowAssets, totalBorrowShares)``,
    ``maxBorrow = collateral.mulDivDown(price, 1e36).wMulDown(lltv)``, healthy iff ``maxBorrow >= borrowed``
    (:func:`position_health`), on the totals *after* accrual — every health check on-chain (``borrow``,
    ``withdrawCollateral``, ``liquidate``) runs right after ``_accrueInterest``;
  - the liquidation incentive factor ``min(1.15, 1 / (1 - 0.3 × (1 - lltv)))`` of ``liquidate``;
  - the largest ``borrow(assets)`` the protocol accepts (:func:`max_borrow_increase`).

* The vectorized float path (:func:`health_factor`, :func:`health_factor_raw`, :func:`liquidation_price`) for
  revaluing many positions, where exactness to the wei is not the point.

Units: token amounts are raw integers (``*_raw``), WAD = 1e18 fixed point (``*_wad``), oracle prices are
``IOracle.price()``: loan-token raw units per collateral-token raw unit, scaled by 1e36.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.fixedpoint import mul_div_down, mul_div_up

__all__ = [
    "LIQUIDATION_CURSOR",
    "MAX_FEE",
    "MAX_LIQUIDATION_INCENTIVE_FACTOR",
    "ORACLE_PRICE_SCALE",
    "UINT128_MAX",
    "VIRTUAL_ASSETS",
    "VIRTUAL_SHARES",
    "WAD",
    "MorphoAccrual",
    "MorphoMarketState",
    "MorphoPositionHealth",
    "accrue_interest",
    "borrowed_assets",
    "health_factor",
    "health_factor_raw",
    "is_healthy",
    "liquidation_incentive_factor",
    "liquidation_price",
    "liquidation_price_raw",
    "max_borrow",
    "max_borrow_increase",
    "position_health",
    "supplied_assets",
    "to_assets_down",
    "to_assets_up",
    "to_shares_down",
    "to_shares_up",
    "w_div_down",
    "w_div_up",
    "w_mul_down",
    "w_taylor_compounded",
]

WAD = 10**18
ORACLE_PRICE_SCALE = 10**36
"""``ConstantsLib.ORACLE_PRICE_SCALE``."""
LIQUIDATION_CURSOR = 3 * 10**17
"""``ConstantsLib.LIQUIDATION_CURSOR`` (0.3)."""
MAX_LIQUIDATION_INCENTIVE_FACTOR = 115 * 10**16
"""``ConstantsLib.MAX_LIQUIDATION_INCENTIVE_FACTOR`` (1.15)."""
MAX_FEE = 25 * 10**16
"""``ConstantsLib.MAX_FEE`` (25%)."""
VIRTUAL_SHARES = 10**6
"""``SharesMathLib.VIRTUAL_SHARES``."""
VIRTUAL_ASSETS = 1
"""``SharesMathLib.VIRTUAL_ASSETS``."""
UINT128_MAX = 2**128 - 1
_UINT256_MAX = 2**256 - 1


# --- MathLib ------------------------------------------------------------------------------------------
def w_mul_down(x: int, y: int) -> int:
    """``x * y / WAD`` rounded down (``MathLib.wMulDown``)."""
    return mul_div_down(x, y, WAD)


def w_div_down(x: int, y: int) -> int:
    """``x * WAD / y`` rounded down (``MathLib.wDivDown``)."""
    return mul_div_down(x, WAD, y)


def w_div_up(x: int, y: int) -> int:
    """``x * WAD / y`` rounded up (``MathLib.wDivUp``)."""
    return mul_div_up(x, WAD, y)


def w_taylor_compounded(x: int, n: int) -> int:
    """``e^(x·n) − 1`` to three terms, in WAD (``MathLib.wTaylorCompounded``): ``xn + (xn)²/2 + (xn)³/6``
    with each term rounded down as Solidity does."""
    first = x * n
    second = mul_div_down(first, first, 2 * WAD)
    third = mul_div_down(second, first, 3 * WAD)
    return first + second + third


# --- SharesMathLib ------------------------------------------------------------------------------------
def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toSharesDown``."""
    return mul_div_down(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_shares_up(assets: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toSharesUp``."""
    return mul_div_up(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toAssetsDown``."""
    return mul_div_down(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toAssetsUp``."""
    return mul_div_up(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


# --- market state and accrual -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MorphoMarketState:
    """``Morpho.market(id)``: the totals as of ``last_update`` (a unix timestamp), and the fee (WAD)."""

    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int
    last_update: int
    fee_wad: int = 0


@dataclass(frozen=True, slots=True)
class MorphoAccrual:
    """What ``_accrueInterest`` does at ``timestamp``: the market after it, the interest, the fee shares minted."""

    market: MorphoMarketState
    interest: int
    fee_shares: int


def accrue_interest(market: MorphoMarketState, borrow_rate_wad: int | None, timestamp: int) -> MorphoAccrual:
    """Replicate ``Morpho._accrueInterest`` at ``timestamp`` (``block.timestamp``).

    Parameters
    ----------
    market : MorphoMarketState
        ``market(id)`` as stored (totals as of ``last_update``).
    borrow_rate_wad : int or None
        The IRM's per-second borrow rate for this market state (``IIrm.borrowRateView(marketParams, market)``,
        which the protocol's ``borrowRate`` returns in the same transaction). None when the market has no IRM
        (``irm == address(0)``): then only ``last_update`` moves, as on-chain.
    timestamp : int
        The block timestamp the protocol accrues to.

    Raises
    ------
    ValueError
        ``timestamp`` is before ``last_update`` (the subtraction underflows on-chain).
    OverflowError
        A total would pass uint128 (``MAX_UINT128_EXCEEDED`` on-chain).
    """
    elapsed = timestamp - market.last_update
    if elapsed < 0:
        raise ValueError(f"timestamp {timestamp} is before the market's last update {market.last_update}")
    if elapsed == 0:
        return MorphoAccrual(market, 0, 0)
    if borrow_rate_wad is None:
        return MorphoAccrual(_replace(market, last_update=timestamp), 0, 0)
    if borrow_rate_wad < 0:
        raise ValueError(f"negative borrow rate {borrow_rate_wad}")
    growth = w_taylor_compounded(borrow_rate_wad, elapsed)
    if growth > _UINT256_MAX:
        raise OverflowError("wTaylorCompounded overflows uint256")
    interest = w_mul_down(market.total_borrow_assets, growth)
    total_borrow = _u128(market.total_borrow_assets + interest)
    total_supply = _u128(market.total_supply_assets + interest)
    fee_shares = 0
    if market.fee_wad != 0:
        fee_amount = w_mul_down(interest, market.fee_wad)
        fee_shares = to_shares_down(fee_amount, total_supply - fee_amount, market.total_supply_shares)
    after = MorphoMarketState(
        total_supply_assets=total_supply,
        total_supply_shares=_u128(market.total_supply_shares + fee_shares),
        total_borrow_assets=total_borrow,
        total_borrow_shares=market.total_borrow_shares,
        last_update=timestamp,
        fee_wad=market.fee_wad,
    )
    return MorphoAccrual(after, interest, fee_shares)


def _u128(x: int) -> int:
    if x > UINT128_MAX:
        raise OverflowError(f"{x} exceeds uint128 (Morpho reverts 'max uint128 exceeded')")
    return x


def _replace(m: MorphoMarketState, *, last_update: int) -> MorphoMarketState:
    return dataclasses.replace(m, last_update=last_update)


# --- the health rule ----------------------------------------------------------------------------------
def borrowed_assets(borrow_shares: int, market: MorphoMarketState) -> int:
    """A position's debt as ``_isHealthy`` counts it: ``toAssetsUp`` (rounded against the borrower)."""
    return to_assets_up(borrow_shares, market.total_borrow_assets, market.total_borrow_shares)


def supplied_assets(supply_shares: int, market: MorphoMarketState) -> int:
    """A lender's claim as ``withdraw(shares)`` pays it: ``toAssetsDown``."""
    return to_assets_down(supply_shares, market.total_supply_assets, market.total_supply_shares)


def max_borrow(collateral_raw: int, price_raw: int, lltv_wad: int) -> int:
    """``collateral.mulDivDown(price, ORACLE_PRICE_SCALE).wMulDown(lltv)``: the debt the collateral carries."""
    return w_mul_down(mul_div_down(collateral_raw, price_raw, ORACLE_PRICE_SCALE), lltv_wad)


def is_healthy(
    collateral_raw: int, borrow_shares: int, market: MorphoMarketState, price_raw: int, lltv_wad: int
) -> bool:
    """``Morpho._isHealthy`` on ``market`` (pass the totals *after* :func:`accrue_interest`)."""
    if borrow_shares == 0:
        return True
    return max_borrow(collateral_raw, price_raw, lltv_wad) >= borrowed_assets(borrow_shares, market)


def min_healthy_collateral_raw(borrowed_raw: int, price_raw: int, lltv_wad: int) -> int | None:
    """The least collateral (raw units) whose :func:`max_borrow` covers ``borrowed_raw``, exactly: ``ceil(ceil(borrowed
    · WAD / lltv) · 1e36 / price)`` from ``maxBorrow``'s two round-downs (0 without debt; None when no collateral
    does: a zero price or LLTV)."""
    if borrowed_raw <= 0:
        return 0
    if price_raw <= 0 or lltv_wad <= 0:
        return None
    return mul_div_up(mul_div_up(borrowed_raw, WAD, lltv_wad), ORACLE_PRICE_SCALE, price_raw)


def liquidation_incentive_factor(lltv_wad: int) -> int:
    """``min(MAX_LIQUIDATION_INCENTIVE_FACTOR, WAD.wDivDown(WAD - LIQUIDATION_CURSOR.wMulDown(WAD - lltv)))``.

    1.15 caps it for LLTVs up to about 50%; e.g. LLTV 86% → 1.0438…, LLTV 94.5% → 1.0167….
    """
    if not 0 <= lltv_wad < WAD:
        raise ValueError(f"LLTV must be in [0, 1e18), got {lltv_wad}")
    return min(MAX_LIQUIDATION_INCENTIVE_FACTOR, w_div_down(WAD, WAD - w_mul_down(LIQUIDATION_CURSOR, WAD - lltv_wad)))


def liquidation_price_raw(collateral_raw: int, borrowed_raw: int, lltv_wad: int) -> int | None:
    """The lowest oracle price (``IOracle.price()`` scale) at which the position is still healthy, exactly.

    At this price ``maxBorrow >= borrowed``; one unit below it the position can be liquidated.
    ``ceil(ceil(borrowed · WAD / lltv) · 1e36 / collateral)``, derived from the two round-downs of
    ``maxBorrow``. None when there is no debt (never liquidatable) or no collateral (liquidatable at any price).
    """
    if borrowed_raw == 0 or collateral_raw == 0 or lltv_wad == 0:
        return None
    quoted = mul_div_up(borrowed_raw, WAD, lltv_wad)  # least collateral value (loan units) whose wMulDown covers
    return mul_div_up(quoted, ORACLE_PRICE_SCALE, collateral_raw)


def _borrow_ok(collateral_cap: int, borrow_shares: int, market: MorphoMarketState, assets: int) -> bool:
    shares = to_shares_up(assets, market.total_borrow_assets, market.total_borrow_shares)
    after = to_assets_up(
        borrow_shares + shares, market.total_borrow_assets + assets, market.total_borrow_shares + shares
    )
    return after <= collateral_cap


def max_borrow_increase(
    collateral_raw: int, borrow_shares: int, market: MorphoMarketState, price_raw: int, lltv_wad: int
) -> int:
    """The largest ``assets`` for which ``borrow(marketParams, assets, 0, onBehalf, receiver)`` passes the
    collateral check (``INSUFFICIENT_COLLATERAL``), on ``market`` after accrual; 0 when none does.

    ``borrow`` adds ``toSharesUp(assets)`` shares and ``assets`` to the totals, then asks ``_isHealthy``; both
    round-ups cost the borrower, so this is at most ``maxBorrow - borrowed``. It equals that while a share is
    worth far less than one asset unit (the usual ~1e6 shares per unit); it can be a unit lower when shares are
    coarse (around one share per unit). The market's liquidity (``totalBorrowAssets <= totalSupplyAssets``) is a
    separate check, not applied here. Confirmed on the exact ``borrow`` arithmetic (bisection where no candidate is).
    """
    cap = max_borrow(collateral_raw, price_raw, lltv_wad)
    # borrowed-after >= assets (see the module tests), so the answer lies in [0, cap]. It is maxBorrow - borrowed
    # or a unit or two below: those candidates are confirmed on the exact arithmetic (passing, and one more asset
    # failing) before the bisection is asked (it took ~50 checks per position and block).
    def ok(assets: int) -> bool:
        return _borrow_ok(cap, borrow_shares, market, assets)

    top = max(cap - borrowed_assets(borrow_shares, market), 0) if borrow_shares else cap
    for x in range(top, max(top - 3, -1), -1):
        if (x == 0 or ok(x)) and (x == cap or not ok(x + 1)):
            return x
    lo, hi = 0, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _borrow_ok(cap, borrow_shares, market, mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True, slots=True)
class MorphoPositionHealth:
    """One position's health on one market, every figure an exact integer (loan-token raw units unless named)."""

    borrowed_raw: int
    """Debt as ``_isHealthy`` counts it (``toAssetsUp`` of the borrow shares)."""
    max_borrow_raw: int
    """``collateral × price / 1e36 × lltv``, both steps rounded down."""
    collateral_value_raw: int
    """``collateral × price / 1e36`` (rounded down): the collateral quoted in the loan token."""
    healthy: bool
    """``max_borrow_raw >= borrowed_raw`` (always true without debt): a ``liquidate`` would revert."""
    health_wad: int | None
    """``max_borrow × 1e18 / borrowed`` rounded down (≥ 1e18 exactly when healthy); None without debt."""
    liquidation_price_raw: int | None
    """See :func:`liquidation_price_raw`."""
    liquidation_incentive_factor_wad: int
    max_borrow_increase_raw: int
    """See :func:`max_borrow_increase` (collateral limit only, not the market's liquidity)."""

    @property
    def health(self) -> float | None:
        return None if self.health_wad is None else self.health_wad / WAD

    @property
    def has_debt(self) -> bool:
        return self.borrowed_raw != 0


def position_health(
    collateral_raw: int, borrow_shares: int, market: MorphoMarketState, price_raw: int, lltv_wad: int
) -> MorphoPositionHealth:
    """The health rule of ``Morpho._isHealthy`` for one position.

    ``market`` must hold the totals the protocol would use: after :func:`accrue_interest` to the block's
    timestamp. A position with borrow shares always has ``borrowed_raw >= 1`` (``toAssetsUp`` of a positive
    share count is positive), so ``health_wad`` is defined exactly when there are borrow shares.
    """
    borrowed = borrowed_assets(borrow_shares, market) if borrow_shares else 0
    value = mul_div_down(collateral_raw, price_raw, ORACLE_PRICE_SCALE)
    cap = w_mul_down(value, lltv_wad)
    return MorphoPositionHealth(
        borrowed_raw=borrowed,
        max_borrow_raw=cap,
        collateral_value_raw=value,
        healthy=borrow_shares == 0 or cap >= borrowed,
        health_wad=mul_div_down(cap, WAD, borrowed) if borrowed else None,
        liquidation_price_raw=liquidation_price_raw(collateral_raw, borrowed, lltv_wad),
        liquidation_incentive_factor_wad=liquidation_incentive_factor(lltv_wad),
        max_borrow_increase_raw=max_borrow_increase(collateral_raw, borrow_shares, market, price_raw, lltv_wad),
    )


# --- float path ---------------------------------------------------------------------------------------
def health_factor(
    collateral: npt.ArrayLike, price: npt.ArrayLike, lltv: npt.ArrayLike, borrowed: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Vectorized Morpho health ``collateral × price × lltv / borrowed`` in floating point.

    Parameters
    ----------
    collateral : array_like
        Collateral amounts, in collateral tokens (or raw units, if ``price`` is per raw unit).
    price : array_like
        Loan tokens per collateral token (broadcast against ``collateral``; scenarios on a leading axis).
    lltv : array_like
        Liquidation LTV as a fraction (0.86).
    borrowed : array_like
        Debt, in loan tokens.

    Returns
    -------
    ndarray
        Broadcast shape; ``inf`` where there is no debt. Liquidatable where < 1.
    """
    coll = np.asarray(collateral, dtype=np.float64)
    px = np.asarray(price, dtype=np.float64)
    lt = np.asarray(lltv, dtype=np.float64)
    debt = np.asarray(borrowed, dtype=np.float64)
    cap = coll * px * lt
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(debt > 0, cap / np.where(debt > 0, debt, 1.0), np.inf)
    return np.asarray(out, dtype=np.float64)


def health_factor_raw(
    collateral_raw: npt.ArrayLike,
    borrow_shares: npt.ArrayLike,
    total_borrow_assets: npt.ArrayLike,
    total_borrow_shares: npt.ArrayLike,
    price_raw: npt.ArrayLike,
    lltv_wad: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """:func:`health_factor` from the protocol's raw integers (as float64), many positions at once.

    Debt is ``shares × (totalBorrowAssets + 1) / (totalBorrowShares + 1e6)`` without rounding; pass the
    totals after accrual. Agrees with the exact path to float precision, except within a few units of the
    boundary where the exact path's round-downs decide.
    """
    coll = np.asarray(collateral_raw, dtype=np.float64)
    shares = np.asarray(borrow_shares, dtype=np.float64)
    tba = np.asarray(total_borrow_assets, dtype=np.float64)
    tbs = np.asarray(total_borrow_shares, dtype=np.float64)
    px = np.asarray(price_raw, dtype=np.float64) / ORACLE_PRICE_SCALE
    lt = np.asarray(lltv_wad, dtype=np.float64) / WAD
    debt = shares * (tba + VIRTUAL_ASSETS) / (tbs + VIRTUAL_SHARES)
    return health_factor(coll, px, lt, debt)


def liquidation_price(
    collateral: npt.ArrayLike, borrowed: npt.ArrayLike, lltv: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Vectorized price (loan per collateral) at which health = 1: ``borrowed / (collateral × lltv)``.

    ``nan`` where there is no debt; ``inf`` where there is debt but no collateral.
    """
    coll = np.asarray(collateral, dtype=np.float64)
    debt = np.asarray(borrowed, dtype=np.float64)
    lt = np.asarray(lltv, dtype=np.float64)
    denom = coll * lt
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(debt > 0, np.where(denom > 0, debt / np.where(denom > 0, denom, 1.0), np.inf), np.nan)
    return np.asarray(out, dtype=np.float64)
