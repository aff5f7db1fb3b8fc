"""Perpetual-futures margin: maintenance requirement, margin health, liquidation price; Hyperliquid and dYdX v4.

One model serves both venues. A *margin account* (a Hyperliquid cross account, one isolated Hyperliquid
position, a dYdX subaccount) holds positions of signed size ``s_i`` (base units; < 0 is short) marked at
``P_i`` (USD), and a cash balance ``cash`` (USD) such that::

    equity            = cash + Σ s_i × P_i                       (USD)
    maintenance       = Σ mm_i(|s_i| × P_i)                      (USD)
    mm(notional)      = notional × mmr_t − deduction_t           (tier t: the last one with lower bound ≤ notional)
    margin health     = equity / maintenance                      (∞ without positions)
    liquidatable  iff   equity < maintenance

The venues' own rules, as their sources state them:

* **Hyperliquid** (docs, *Margining*, *Margin tiers*, *Liquidations*): cash is ``totalRawUsd`` (cross) or the
  isolated position's ``leverage.rawUsd``; ``P`` is the mark price; ``mmr_t = 1 / (2 × maxLeverage_t)``;
  ``deduction_0 = 0``, ``deduction_t = deduction_{t-1} + lowerBound_t × (mmr_t − mmr_{t-1})`` so the
  requirement is continuous in the notional. Liquidation price:
  ``liq = P − side × (equity − maintenance) / |s| / (1 − side × mmr)`` (the docs' formula; solved here per tier).
* **dYdX v4** (``v4-chain``: ``x/perpetuals/types/liquidity_tier.go``, indexer ``comlink/src/lib/helpers.ts``):
  cash is the signed USDC asset position; ``P`` is the oracle price; a single tier with
  ``mmr = maintenanceMarginFraction`` (= base IMF × maintenance fraction, as the indexer reports it).
  Initial margin: the effective IMF rises linearly from the base IMF to 1 between the liquidity tier's
  open-interest lower and upper caps (:func:`dydx_initial_margin_fraction`); the indexer's ``freeCollateral``
  is ``equity − Σ |s × P| × base IMF`` (it does not scale with open interest).

The liquidation price of a position holds the account's other positions and cash fixed and solves
``equity(P) = maintenance(P)`` for its own mark ``P``. Both sides are linear in ``P`` within a tier, and
``equity − maintenance`` is strictly monotone in ``P`` (mmr < 1), so there is exactly one root; it is ``nan``
when it is not a positive price (a long that no price can liquidate).

The venues report these figures themselves; :func:`check_hyperliquid` and :func:`check_dydx` recompute them
from the decoded positions and return every disagreement beyond a tolerance derived from the venue's
rounding (:class:`VenueCheck`; :meth:`VenueCheck.raise_for_disagreement` raises
:class:`VenueDisagreementError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DydxFigures",
    "HyperliquidFigures",
    "PerpBook",
    "PerpHealth",
    "VenueCheck",
    "VenueDisagreementError",
    "VenueDiscrepancy",
    "account_equity",
    "account_maintenance",
    "check_against_venue",
    "check_dydx",
    "check_hyperliquid",
    "dydx_health",
    "dydx_initial_margin_fraction",
    "free_collateral",
    "hyperliquid_health",
    "hyperliquid_tier_mmr",
    "liquidatable",
    "liquidation_price",
    "maintenance_margin",
    "margin_health",
    "tier_deductions",
]

F64 = npt.NDArray[np.float64]

HYPERLIQUID_USD_QUANTUM = 1e-6
"""Hyperliquid prints USD amounts with 6 decimals (USDC's own precision)."""

_FLOAT_RTOL = 1e-12
"""Relative slack for float64 sums of decimal inputs (many orders above binary64's 1.1e-16)."""


# --- tiers -------------------------------------------------------------------------------------------
def _as_tiers(tier_lower_usd: npt.ArrayLike, tier_mmr: npt.ArrayLike, n: int) -> tuple[F64, F64]:
    lower = np.asarray(tier_lower_usd, dtype=np.float64)
    mmr = np.asarray(tier_mmr, dtype=np.float64)
    if lower.ndim == 1:
        lower = np.broadcast_to(lower, (n, lower.shape[0]))
    if mmr.ndim == 1:
        mmr = np.broadcast_to(mmr, (n, mmr.shape[0]))
    if lower.shape != mmr.shape or lower.ndim != 2 or lower.shape[0] != n:
        raise ValueError(f"tier tables must be of shape ({n}, n_tiers); got {lower.shape} and {mmr.shape}")
    return lower, mmr


def hyperliquid_tier_mmr(tier_max_leverage: npt.ArrayLike) -> F64:
    """Hyperliquid's maintenance margin rate of each tier: ``1 / (2 × maxLeverage)``.

    Parameters
    ----------
    tier_max_leverage : array_like of shape (..., n_tiers)
        Max leverage of each tier (``nan`` for padding).

    Returns
    -------
    ndarray of the same shape
        Rates as fractions (0.0125 at 40×).
    """
    lev = np.asarray(tier_max_leverage, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(1.0 / (2.0 * lev), dtype=np.float64)


def tier_deductions(tier_lower_usd: npt.ArrayLike, tier_mmr: npt.ArrayLike) -> F64:
    """Maintenance deduction of each tier, which keeps the requirement continuous in the notional.

    Parameters
    ----------
    tier_lower_usd : array_like of shape (n, n_tiers)
        Lower bound of each tier's notional, USD, ascending, the first 0; padding is ``+inf``.
    tier_mmr : array_like of shape (n, n_tiers)
        Maintenance margin rate of each tier (fraction).

    Returns
    -------
    ndarray of shape (n, n_tiers)
        ``d_0 = 0``, ``d_t = d_{t-1} + lower_t × (mmr_t − mmr_{t-1})``, USD (0 in padding).
    """
    lower = np.asarray(tier_lower_usd, dtype=np.float64)
    mmr = np.asarray(tier_mmr, dtype=np.float64)
    step = np.zeros_like(lower)
    if lower.shape[-1] > 1:
        finite = np.isfinite(lower[..., 1:])
        dm = np.where(finite, mmr[..., 1:] - mmr[..., :-1], 0.0)
        step[..., 1:] = np.where(finite, np.where(finite, lower[..., 1:], 0.0) * dm, 0.0)
    return np.asarray(np.cumsum(step, axis=-1), dtype=np.float64)


def _tier_index(notional_usd: F64, lower: F64) -> npt.NDArray[np.intp]:
    idx = (lower <= notional_usd[:, None]).sum(axis=1) - 1
    return np.asarray(np.clip(idx, 0, lower.shape[1] - 1), dtype=np.intp)


def maintenance_margin(notional_usd: npt.ArrayLike, tier_lower_usd: npt.ArrayLike, tier_mmr: npt.ArrayLike) -> F64:
    """Maintenance margin of each position from its notional and its venue's tier table.

    Parameters
    ----------
    notional_usd : array_like of shape (n,)
        ``|size| × price`` of each position, USD.
    tier_lower_usd : array_like of shape (n, n_tiers) or (n_tiers,)
        Tier lower bounds, USD (first 0, ascending, ``+inf`` padding). A single tier: ``[[0.0]]``.
    tier_mmr : array_like of the same shape
        Maintenance margin rate of each tier (fraction).

    Returns
    -------
    ndarray of shape (n,)
        ``notional × mmr_t − deduction_t`` of the position's tier, USD.
    """
    notional = np.asarray(notional_usd, dtype=np.float64).reshape(-1)
    lower, mmr = _as_tiers(tier_lower_usd, tier_mmr, notional.shape[0])
    ded = tier_deductions(lower, mmr)
    t = _tier_index(notional, lower)[:, None]
    rate = np.take_along_axis(mmr, t, axis=1)[:, 0]
    d = np.take_along_axis(ded, t, axis=1)[:, 0]
    return np.asarray(notional * rate - d, dtype=np.float64)


# --- books of accounts -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PerpBook:
    """Positions of ``k`` margin accounts, flattened to ``n`` positions.

    Attributes
    ----------
    size : ndarray of shape (n,)
        Signed size, base units (< 0 short).
    mark_usd : ndarray of shape (n,)
        The price margin is computed at (Hyperliquid: mark; dYdX: oracle), USD.
    account : ndarray of shape (n,), int
        Index of each position's account in ``cash_usd``.
    cash_usd : ndarray of shape (k,)
        Each account's cash, USD: equity = cash + Σ size × mark.
    tier_lower_usd, tier_mmr : ndarray of shape (n, n_tiers)
        Each position's maintenance tier table (see :func:`maintenance_margin`).
    """

    size: F64
    mark_usd: F64
    account: npt.NDArray[np.intp]
    cash_usd: F64
    tier_lower_usd: F64
    tier_mmr: F64

    @classmethod
    def build(
        cls,
        size: npt.ArrayLike,
        mark_usd: npt.ArrayLike,
        account: npt.ArrayLike,
        cash_usd: npt.ArrayLike,
        tier_lower_usd: npt.ArrayLike,
        tier_mmr: npt.ArrayLike,
    ) -> PerpBook:
        """Validate shapes and convert; a 1-d ``tier_mmr`` with ``tier_lower_usd=[0]`` is one tier per position."""
        s = np.asarray(size, dtype=np.float64).reshape(-1)
        n = s.shape[0]
        m = np.asarray(mark_usd, dtype=np.float64).reshape(-1)
        acc = np.asarray(account, dtype=np.intp).reshape(-1)
        cash = np.asarray(cash_usd, dtype=np.float64).reshape(-1)
        mmr_in = np.asarray(tier_mmr, dtype=np.float64)
        if mmr_in.ndim == 1 and mmr_in.shape[0] == n and np.asarray(tier_lower_usd).size == 1:
            mmr_in = mmr_in[:, None]
        lower, mmr = _as_tiers(tier_lower_usd, mmr_in, n)
        if m.shape != (n,) or acc.shape != (n,):
            raise ValueError("size, mark_usd and account must have the same length")
        if n and (acc.min() < 0 or acc.max() >= cash.shape[0]):
            raise ValueError("account indexes must point into cash_usd")
        return cls(s, m, acc, cash, np.array(lower), np.array(mmr))

    @property
    def n_accounts(self) -> int:
        return int(self.cash_usd.shape[0])

    def with_marks(self, mark_usd: npt.ArrayLike) -> PerpBook:
        """The same book revalued at other marks (shape (n,))."""
        m = np.asarray(mark_usd, dtype=np.float64).reshape(-1)
        if m.shape != self.size.shape:
            raise ValueError(f"mark_usd must have shape {self.size.shape}")
        return PerpBook(self.size, m, self.account, self.cash_usd, self.tier_lower_usd, self.tier_mmr)


def _per_account(book: PerpBook, values: F64) -> F64:
    return np.asarray(np.bincount(book.account, weights=values, minlength=book.n_accounts), dtype=np.float64)


def account_equity(book: PerpBook) -> F64:
    """Equity of each account: ``cash + Σ size × mark``, USD, shape (k,)."""
    return np.asarray(book.cash_usd + _per_account(book, book.size * book.mark_usd), dtype=np.float64)


def _position_maintenance(book: PerpBook) -> F64:
    return maintenance_margin(np.abs(book.size) * book.mark_usd, book.tier_lower_usd, book.tier_mmr)


def account_maintenance(book: PerpBook) -> F64:
    """Maintenance requirement of each account: Σ of its positions' maintenance margins, USD, shape (k,)."""
    return _per_account(book, _position_maintenance(book))


def margin_health(equity_usd: npt.ArrayLike, maintenance_usd: npt.ArrayLike) -> F64:
    """Margin health ``equity / maintenance`` (dimensionless; < 1 is liquidatable); ``inf`` without requirement.

    Parameters
    ----------
    equity_usd, maintenance_usd : array_like of shape (k,)
        USD.
    """
    e = np.asarray(equity_usd, dtype=np.float64)
    m = np.asarray(maintenance_usd, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(m > 0, e / np.where(m > 0, m, 1.0), np.where(e >= 0, np.inf, -np.inf))
    return np.asarray(out, dtype=np.float64)


def liquidatable(equity_usd: npt.ArrayLike, maintenance_usd: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """``equity < maintenance`` per account (shape (k,))."""
    return np.asarray(np.asarray(equity_usd, np.float64) < np.asarray(maintenance_usd, np.float64))


def liquidation_price(book: PerpBook) -> F64:
    """Mark price of each position at which its account's equity meets its maintenance requirement.

    Holds the account's cash and other positions (at their marks) fixed. Per tier ``t`` of the position::

        P_t = (M_others − d_t − E + s × m) / (s − |s| × mmr_t)

    where ``E`` is the account's equity and ``M_others`` the other positions' requirement at the current
    marks; the root is the ``P_t`` whose notional ``|s| × P_t`` lies in tier ``t``.

    Parameters
    ----------
    book : PerpBook
        ``n`` positions of ``k`` accounts.

    Returns
    -------
    ndarray of shape (n,)
        USD; ``nan`` where the size is 0 or no positive price liquidates the account.
    """
    s = book.size
    n = s.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    e = account_equity(book)[book.account]
    mm = _position_maintenance(book)
    m_others = _per_account(book, mm)[book.account] - mm
    lower, mmr = book.tier_lower_usd, book.tier_mmr
    ded = tier_deductions(lower, mmr)
    abs_s = np.abs(s)[:, None]
    num = (m_others + s * book.mark_usd - e)[:, None] - ded
    den = s[:, None] - abs_s * mmr
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = num / den
        notional = abs_s * p
    upper = np.concatenate([lower[:, 1:], np.full((n, 1), np.inf)], axis=1)
    slack = 1e-9 * np.maximum(1.0, np.abs(notional))
    valid = (
        np.isfinite(p)
        & (p > 0)
        & np.isfinite(lower)
        & (notional >= lower - slack)
        & (notional < upper + slack)
        & (abs_s > 0)
    )
    first = np.argmax(valid, axis=1)
    out = np.take_along_axis(p, first[:, None], axis=1)[:, 0]
    return np.asarray(np.where(valid.any(axis=1), out, np.nan), dtype=np.float64)


def dydx_initial_margin_fraction(
    base_imf: npt.ArrayLike,
    open_notional_usd: npt.ArrayLike,
    lower_cap_usd: npt.ArrayLike,
    upper_cap_usd: npt.ArrayLike,
) -> F64:
    """dYdX v4 effective initial margin fraction (``LiquidityTier.GetInitialMarginQuoteQuantums``).

    Parameters
    ----------
    base_imf : array_like of shape (n,)
        The liquidity tier's initial margin fraction (indexer ``initialMarginFraction``).
    open_notional_usd : array_like of shape (n,)
        Market open interest × oracle price, USD.
    lower_cap_usd, upper_cap_usd : array_like of shape (n,)
        The tier's open-interest caps, USD; an upper cap of 0 disables the scaling.

    Returns
    -------
    ndarray of shape (n,)
        ``min(base + max(0, (oi − lower) / (upper − lower)) × (1 − base), 1)``; ``base`` when the upper cap is
        0 or ``oi ≤ lower``; 1 when ``oi ≥ upper``.
    """
    base = np.asarray(base_imf, dtype=np.float64)
    oi = np.asarray(open_notional_usd, dtype=np.float64)
    lo = np.asarray(lower_cap_usd, dtype=np.float64)
    hi = np.asarray(upper_cap_usd, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (oi - lo) / (hi - lo)
    scaled = np.minimum(base + np.maximum(scale, 0.0) * (1.0 - base), 1.0)
    out = np.where(hi == 0, base, np.where(oi >= hi, 1.0, np.where(oi <= lo, base, scaled)))
    return np.asarray(out, dtype=np.float64)


def free_collateral(book: PerpBook, initial_margin_fraction: npt.ArrayLike) -> F64:
    """Free collateral of each account: ``equity − Σ |size × mark| × IMF``, USD, shape (k,).

    Parameters
    ----------
    book : PerpBook
    initial_margin_fraction : array_like of shape (n,)
        Each position's initial margin fraction.
    """
    imf = np.asarray(initial_margin_fraction, dtype=np.float64).reshape(-1)
    return np.asarray(
        account_equity(book) - _per_account(book, np.abs(book.size * book.mark_usd) * imf), dtype=np.float64
    )


# --- results and checks ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PerpHealth:
    """Health of one venue account's margin accounts (Hyperliquid: cross + each isolated position).

    ``account_labels``, ``equity_usd``, ``maintenance_usd``, ``health``, ``liquidatable``: shape (k,);
    ``position_labels``, ``liquidation_px``: shape (n,), USD (``nan``: none).
    """

    account_labels: tuple[str, ...]
    equity_usd: F64
    maintenance_usd: F64
    health: F64
    liquidatable: npt.NDArray[np.bool_]
    position_labels: tuple[str, ...]
    liquidation_px: F64

    @property
    def any_liquidatable(self) -> bool:
        return bool(self.liquidatable.any())


def _health(book: PerpBook, account_labels: tuple[str, ...], position_labels: tuple[str, ...]) -> PerpHealth:
    eq = account_equity(book)
    mm = account_maintenance(book)
    return PerpHealth(
        account_labels=account_labels,
        equity_usd=eq,
        maintenance_usd=mm,
        health=margin_health(eq, mm),
        liquidatable=liquidatable(eq, mm),
        position_labels=position_labels,
        liquidation_px=liquidation_price(book),
    )


@dataclass(frozen=True, slots=True)
class VenueDiscrepancy:
    """One figure where xmargin and the venue disagree beyond ``tolerance`` (same unit as the figure)."""

    field: str
    computed: float
    reported: float
    tolerance: float

    @property
    def abs_diff(self) -> float:
        return abs(self.computed - self.reported)

    def __str__(self) -> str:
        return (
            f"{self.field}: computed {self.computed!r}, venue reports {self.reported!r} "
            f"(|diff| {self.abs_diff:.3g} > tolerance {self.tolerance:.3g})"
        )


class VenueDisagreementError(ValueError):
    """xmargin's recomputation of a venue's own figures disagrees beyond rounding."""

    def __init__(self, check: VenueCheck) -> None:
        lines = "; ".join(str(d) for d in check.discrepancies)
        super().__init__(f"{check.venue} {check.account}: {len(check.discrepancies)} disagreement(s): {lines}")
        self.check = check


@dataclass(frozen=True, slots=True)
class VenueCheck:
    """Every compared figure (``fields``, ``computed``, ``reported``, ``tolerance``: shape (m,)) and the
    disagreements among them."""

    venue: str
    account: str
    fields: tuple[str, ...]
    computed: F64
    reported: F64
    tolerance: F64
    discrepancies: tuple[VenueDiscrepancy, ...]

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def raise_for_disagreement(self) -> VenueCheck:
        """Raise :class:`VenueDisagreementError` when any figure disagrees; return ``self`` otherwise."""
        if self.discrepancies:
            raise VenueDisagreementError(self)
        return self


def check_against_venue(
    fields: Sequence[str],
    computed: npt.ArrayLike,
    reported: npt.ArrayLike,
    tolerance: npt.ArrayLike,
    *,
    venue: str = "",
    account: str = "",
) -> VenueCheck:
    """Compare recomputed figures with the venue's own.

    Parameters
    ----------
    fields : sequence of str, length m
        Names of the figures (``"crossMaintenanceMarginUsed"``, ``"ETH.liquidationPx"``…).
    computed, reported : array_like of shape (m,)
        The figures; ``nan`` means "none" (e.g. a null ``liquidationPx``): two ``nan`` agree, one does not.
    tolerance : array_like of shape (m,) or scalar
        Largest accepted ``|computed − reported|``, in each figure's unit.

    Returns
    -------
    VenueCheck
        With one :class:`VenueDiscrepancy` per figure outside its tolerance.
    """
    c = np.asarray(computed, dtype=np.float64).reshape(-1)
    r = np.asarray(reported, dtype=np.float64).reshape(-1)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), c.shape).copy()
    names = tuple(fields)
    if not (len(names) == c.shape[0] == r.shape[0]):
        raise ValueError("fields, computed and reported must have the same length")
    both_nan = np.isnan(c) & np.isnan(r)
    with np.errstate(invalid="ignore"):
        bad = ~both_nan & ~(np.abs(c - r) <= tol)
    out = tuple(VenueDiscrepancy(names[i], float(c[i]), float(r[i]), float(tol[i])) for i in np.flatnonzero(bad))
    return VenueCheck(venue, account, names, c, r, tol, out)


# --- Hyperliquid -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HyperliquidFigures:
    """One Hyperliquid account as floats: its positions and what the venue reports about them.

    Built by the connector's ``HyperliquidSnapshot.health_inputs(wallet)``. Shapes: (n,) per position,
    (n, n_tiers) for tier tables (padding: lower ``inf``, leverage ``nan``).
    """

    wallet: str
    coin: tuple[str, ...]
    szi: F64
    """Signed size, base units."""
    position_value_usd: F64
    """``|szi| × mark``, as reported (the mark is recovered from it)."""
    entry_px: F64
    is_cross: npt.NDArray[np.bool_]
    isolated_raw_usd: F64
    """``leverage.rawUsd`` of isolated positions (``nan`` for cross)."""
    tier_lower_usd: F64
    tier_max_leverage: F64
    cross_raw_usd: float
    """``crossMarginSummary.totalRawUsd``."""
    reported_cross_account_value_usd: float
    reported_cross_maintenance_usd: float
    reported_liquidation_px: F64
    """``nan`` where the venue reports null."""
    reported_margin_used_usd: F64
    reported_unrealized_pnl_usd: F64


def _per_position_table(values: npt.ArrayLike, n: int) -> F64:
    """``values`` as shape (n, n_tiers); an account without positions has an empty (0, 1) table."""
    arr = np.asarray(values, dtype=np.float64)
    return arr.reshape(n, -1) if n else np.zeros((0, 1))


def _hyperliquid_book(fig: HyperliquidFigures, mark_usd: npt.ArrayLike | None) -> tuple[PerpBook, tuple[str, ...]]:
    szi = np.asarray(fig.szi, dtype=np.float64)
    n = szi.shape[0]
    if mark_usd is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            mark = np.where(szi != 0, np.asarray(fig.position_value_usd, np.float64) / np.abs(szi), 0.0)
    else:
        mark = np.asarray(mark_usd, dtype=np.float64).reshape(-1)
    is_cross = np.asarray(fig.is_cross, dtype=bool)
    account = np.zeros(n, dtype=np.intp)
    cash = [fig.cross_raw_usd]
    labels = ["cross"]
    for i in np.flatnonzero(~is_cross):
        account[i] = len(cash)
        cash.append(float(fig.isolated_raw_usd[i]))
        labels.append(f"isolated:{fig.coin[i]}")
    lower = _per_position_table(fig.tier_lower_usd, n)
    mmr = hyperliquid_tier_mmr(_per_position_table(fig.tier_max_leverage, n))
    return PerpBook.build(szi, mark, account, cash, lower, mmr), tuple(labels)


def hyperliquid_health(fig: HyperliquidFigures, mark_usd: npt.ArrayLike | None = None) -> PerpHealth:
    """Health of a Hyperliquid account (cross account first, then each isolated position).

    Parameters
    ----------
    fig : HyperliquidFigures
    mark_usd : array_like of shape (n,), optional
        Marks to revalue at (USD); default: the marks implied by the reported ``positionValue``.
    """
    book, labels = _hyperliquid_book(fig, mark_usd)
    return _health(book, labels, fig.coin)


def check_hyperliquid(
    fig: HyperliquidFigures, *, usd_quantum: float = HYPERLIQUID_USD_QUANTUM, rtol: float = 1e-7
) -> VenueCheck:
    """Recompute a Hyperliquid account's reported figures from its positions and compare.

    Figures: ``crossMarginSummary.accountValue`` (= totalRawUsd + Σ szi × mark over cross positions),
    ``crossMaintenanceMarginUsed``, and per position ``liquidationPx``, ``unrealizedPnl``
    (= szi × (mark − entryPx)) and, for isolated positions, ``marginUsed`` (= rawUsd + szi × mark). The
    mark is ``positionValue / |szi|`` of the same payload, so the check is internally consistent.

    Tolerance (why): every USD input is printed rounded to ``usd_quantum`` (1e-6), so a figure built from
    ``j`` rounded terms may be off by ``j × usd_quantum``; a liquidation price moves by
    ``ΔUSD / (|szi| × (1 − side × mmr))`` per USD of rounding in equity or maintenance, so its tolerance is
    that propagated bound; ``rtol`` (relative, prices only) covers the venue's own rounding of the printed
    price. USD figures get no relative slack beyond float64 noise (1e-12).

    Returns
    -------
    VenueCheck
    """
    book, _ = _hyperliquid_book(fig, None)
    n = book.size.shape[0]
    cross = np.asarray(fig.is_cross, dtype=bool)
    n_cross = int(cross.sum())
    eq = account_equity(book)
    mm_pos = _position_maintenance(book)
    liq = liquidation_price(book)
    mark = book.mark_usd
    fields: list[str] = ["crossMarginSummary.accountValue", "crossMaintenanceMarginUsed"]
    computed: list[float] = [float(eq[0]), float(mm_pos[cross].sum())]
    reported: list[float] = [fig.reported_cross_account_value_usd, fig.reported_cross_maintenance_usd]
    tol: list[float] = [
        (2 + n_cross) * usd_quantum + _FLOAT_RTOL * abs(fig.reported_cross_account_value_usd),
        (1 + n_cross) * usd_quantum + _FLOAT_RTOL * abs(fig.reported_cross_maintenance_usd),
    ]
    # Current tier's mmr of each position, for the liquidation-price error bound.
    notional = np.abs(book.size) * mark
    t = _tier_index(notional, book.tier_lower_usd)[:, None]
    rate = np.take_along_axis(book.tier_mmr, t, axis=1)[:, 0]
    group_terms = np.bincount(book.account, minlength=book.n_accounts)[book.account]
    for i in range(n):
        coin = fig.coin[i]
        size = abs(float(book.size[i]))
        side = 1.0 if book.size[i] > 0 else -1.0
        usd_terms = 2 + 2 * int(group_terms[i])
        px_tol = usd_terms * usd_quantum / max(size * abs(1.0 - side * rate[i]), 1e-300)
        reported_liq = float(fig.reported_liquidation_px[i])
        fields.append(f"{coin}.liquidationPx")
        computed.append(float(liq[i]))
        reported.append(reported_liq)
        tol.append(px_tol + rtol * (abs(reported_liq) if np.isfinite(reported_liq) else 0.0))
        upnl = float(book.size[i] * (mark[i] - fig.entry_px[i]))
        fields.append(f"{coin}.unrealizedPnl")
        computed.append(upnl)
        reported.append(float(fig.reported_unrealized_pnl_usd[i]))
        tol.append(3 * usd_quantum + _FLOAT_RTOL * abs(upnl))
        if not cross[i]:
            fields.append(f"{coin}.marginUsed")
            computed.append(float(eq[book.account[i]]))
            reported.append(float(fig.reported_margin_used_usd[i]))
            tol.append(3 * usd_quantum + _FLOAT_RTOL * abs(float(eq[book.account[i]])))
    return check_against_venue(fields, computed, reported, tol, venue="hyperliquid", account=fig.wallet)


# --- dYdX v4 -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DydxFigures:
    """One dYdX v4 subaccount as floats: its positions, the markets' margin fractions, what the indexer reports.

    Built by the connector's ``DydxSnapshot.health_inputs(account)``. Shapes: (n,) per position.
    """

    account: str
    market: tuple[str, ...]
    size: F64
    """Signed size, base units."""
    oracle_usd: F64
    """The oracle price the indexer valued the subaccount at (recovered from ``unrealizedPnl`` when it can be)."""
    initial_margin_fraction: F64
    maintenance_margin_fraction: F64
    usdc_usd: float
    """Signed USDC asset position (after unsettled funding, as the indexer reports it)."""
    reported_equity_usd: float
    reported_free_collateral_usd: float
    open_notional_usd: F64 | None = None
    """Market open interest × oracle, USD (for the effective IMF; optional)."""
    oi_lower_cap_usd: F64 | None = None
    oi_upper_cap_usd: F64 | None = None


def _dydx_book(fig: DydxFigures, oracle_usd: npt.ArrayLike | None) -> PerpBook:
    size = np.asarray(fig.size, dtype=np.float64)
    price = fig.oracle_usd if oracle_usd is None else oracle_usd
    return PerpBook.build(
        size,
        price,
        np.zeros(size.shape[0], dtype=np.intp),
        [fig.usdc_usd],
        [0.0],
        np.asarray(fig.maintenance_margin_fraction, dtype=np.float64),
    )


def dydx_health(fig: DydxFigures, oracle_usd: npt.ArrayLike | None = None) -> PerpHealth:
    """Health of a dYdX subaccount (one cross account); ``oracle_usd`` (shape (n,)) revalues it."""
    return _health(_dydx_book(fig, oracle_usd), (fig.account,), fig.market)


def check_dydx(fig: DydxFigures, *, usd_quantum: float = 1e-6, rtol: float = 1e-9) -> VenueCheck:
    """Recompute a subaccount's ``equity`` and ``freeCollateral`` as the indexer does and compare.

    ``equity = USDC + Σ size × oracle``; ``freeCollateral = equity − Σ |size × oracle| × base IMF``
    (``calculateEquityAndFreeCollateral`` in the indexer: base IMF, no open-interest scaling).

    Tolerance (why): the indexer computes in exact decimals (big.js) from the same strings we decode, so the
    only error is ours (float64, ``rtol``) and the recovery of the oracle price from ``unrealizedPnl``; a few
    ``usd_quantum`` (1e-6, USDC's precision) absorb the latter.
    """
    book = _dydx_book(fig, None)
    n = book.size.shape[0]
    eq = float(account_equity(book)[0])
    fc = float(free_collateral(book, fig.initial_margin_fraction)[0])
    tol_eq = (1 + n) * usd_quantum + rtol * (abs(eq) + float(np.abs(book.size * book.mark_usd).sum()))
    return check_against_venue(
        ["equity", "freeCollateral"],
        [eq, fc],
        [fig.reported_equity_usd, fig.reported_free_collateral_usd],
        [tol_eq, tol_eq * 2],
        venue="dydx_v4",
        account=fig.account,
    )
