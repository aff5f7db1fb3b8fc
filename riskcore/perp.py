"""Perpetual-futures margin, as every perp venue computes it: maintenance requirement, margin health,
liquidation price.

A *margin account* (a cross account, one isolated position, a subaccount) holds positions of signed size
``s_i`` (base units; < 0 is short) marked at ``P_i`` (USD), and a cash balance ``cash`` (USD) such that::

    equity            = cash + Σ s_i × P_i                       (USD)
    maintenance       = Σ mm_i(|s_i| × P_i)                      (USD)
    mm(notional)      = notional × mmr_t − deduction_t           (tier t: the last one with lower bound ≤ notional)
    margin health     = equity / maintenance                      (∞ without positions)
    liquidatable  iff   equity < maintenance

A venue's own rule (what its cash and mark are, its tier table, its rounding) lives in its module
``riskcore/venues/<venue>/``, which builds a :class:`PerpBook` and checks its recomputed figures against the
ones the venue reports (:func:`check_against_venue`, :class:`VenueCheck`).

The liquidation price of a position holds the account's other positions and cash fixed and solves
``equity(P) = maintenance(P)`` for its own mark ``P``. Both sides are linear in ``P`` within a tier, and
``equity − maintenance`` is strictly monotone in ``P`` (mmr < 1), so there is exactly one root; it is ``nan``
when it is not a positive price (a long that no price can liquidate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "FLOAT_RTOL",
    "PerpBook",
    "PerpHealth",
    "VenueCheck",
    "VenueDisagreementError",
    "VenueDiscrepancy",
    "account_equity",
    "account_maintenance",
    "book_health",
    "book_health_many",
    "check_against_venue",
    "free_collateral",
    "liquidatable",
    "liquidation_price",
    "maintenance_margin",
    "margin_health",
    "position_maintenance",
    "stack_books",
    "tier_deductions",
    "tier_index",
]

F64 = npt.NDArray[np.float64]

FLOAT_RTOL = 1e-12
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


def tier_index(notional_usd: F64, lower: F64) -> npt.NDArray[np.intp]:
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
    t = tier_index(notional, lower)[:, None]
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
        The price margin is computed at (the venue's mark or oracle), USD.
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


def stack_books(books: Sequence[PerpBook]) -> tuple[PerpBook, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Many venue accounts' books as one, so each measure runs once over all of them.

    Every measure of this module is elementwise per position or summed per account in position order, so each
    account's slice of a stacked result equals that account's own result bit for bit: tier tables are padded to the
    widest one as within a book (lower ``+inf``, rate ``nan``: never a position's tier), account indexes shifted.

    Parameters
    ----------
    books : sequence of PerpBook, length b

    Returns
    -------
    book : PerpBook
        Σ n positions of Σ k accounts.
    account_start : ndarray of shape (b + 1,), int
        Book ``i``'s accounts are ``account_start[i]:account_start[i + 1]`` of the stacked book's accounts.
    position_start : ndarray of shape (b + 1,), int
        Book ``i``'s positions are ``position_start[i]:position_start[i + 1]``.
    """
    k = np.array([0] + [b.n_accounts for b in books], dtype=np.intp)
    n = np.array([0] + [b.size.shape[0] for b in books], dtype=np.intp)
    account_start = np.asarray(np.cumsum(k), dtype=np.intp)
    position_start = np.asarray(np.cumsum(n), dtype=np.intp)
    width = max((b.tier_lower_usd.shape[1] for b in books), default=1)
    total = int(position_start[-1])
    lower = np.full((total, width), np.inf)
    mmr = np.full((total, width), np.nan)
    for b, start in zip(books, position_start[:-1], strict=True):
        rows, cols = b.tier_lower_usd.shape
        lower[start : start + rows, :cols] = b.tier_lower_usd
        mmr[start : start + rows, :cols] = b.tier_mmr

    def cat(parts: list[npt.NDArray[np.float64]] | list[npt.NDArray[np.intp]], dtype: type) -> npt.NDArray[np.generic]:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

    book = PerpBook(
        size=np.asarray(cat([b.size for b in books], np.float64), dtype=np.float64),
        mark_usd=np.asarray(cat([b.mark_usd for b in books], np.float64), dtype=np.float64),
        account=np.asarray(cat([b.account + a for b, a in zip(books, account_start[:-1], strict=True)], np.intp),
                           dtype=np.intp),
        cash_usd=np.asarray(cat([b.cash_usd for b in books], np.float64), dtype=np.float64),
        tier_lower_usd=lower,
        tier_mmr=mmr,
    )
    return book, account_start, position_start


def _per_account(book: PerpBook, values: F64) -> F64:
    return np.asarray(np.bincount(book.account, weights=values, minlength=book.n_accounts), dtype=np.float64)


def account_equity(book: PerpBook) -> F64:
    """Equity of each account: ``cash + Σ size × mark``, USD, shape (k,)."""
    return np.asarray(book.cash_usd + _per_account(book, book.size * book.mark_usd), dtype=np.float64)


def position_maintenance(book: PerpBook) -> F64:
    return maintenance_margin(np.abs(book.size) * book.mark_usd, book.tier_lower_usd, book.tier_mmr)


def account_maintenance(book: PerpBook) -> F64:
    """Maintenance requirement of each account: Σ of its positions' maintenance margins, USD, shape (k,)."""
    return _per_account(book, position_maintenance(book))


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
    mm = position_maintenance(book)
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
    """Health of one venue account's margin accounts (e.g. a cross account and each isolated position).

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


def book_health(book: PerpBook, account_labels: tuple[str, ...], position_labels: tuple[str, ...]) -> PerpHealth:
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


def book_health_many(
    books: Sequence[PerpBook],
    account_labels: Sequence[tuple[str, ...]],
    position_labels: Sequence[tuple[str, ...]],
) -> list[PerpHealth]:
    """:func:`book_health` of each book, computed once over their :func:`stack_books` (equal to it, book by book,
    bit for bit; a one-position book costs ~0.3 ms of numpy call overhead on its own)."""
    book, acc, pos = stack_books(books)
    eq = account_equity(book)
    mm = account_maintenance(book)
    health = margin_health(eq, mm)
    liq_now = liquidatable(eq, mm)
    liq_px = liquidation_price(book)
    out = []
    for i in range(len(books)):
        a = slice(int(acc[i]), int(acc[i + 1]))
        p = slice(int(pos[i]), int(pos[i + 1]))
        out.append(PerpHealth(account_labels=account_labels[i], equity_usd=eq[a].copy(),
                              maintenance_usd=mm[a].copy(), health=health[a].copy(), liquidatable=liq_now[a].copy(),
                              position_labels=position_labels[i], liquidation_px=liq_px[p].copy()))
    return out


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


