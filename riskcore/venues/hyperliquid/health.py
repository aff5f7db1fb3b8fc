"""Hyperliquid's perp margin rule (docs, *Margining*, *Margin tiers*, *Liquidations*).

Cash is ``totalRawUsd`` (cross) or the isolated position's ``leverage.rawUsd``; ``P`` is the mark price;
``mmr_t = 1 / (2 × maxLeverage_t)``; ``deduction_0 = 0``, ``deduction_t = deduction_{t-1} + lowerBound_t ×
(mmr_t − mmr_{t-1})`` so the requirement is continuous in the notional. Liquidation price:
``liq = P − side × (equity − maintenance) / |s| / (1 − side × mmr)`` (the docs' formula; solved per tier by
:func:`riskcore.perp.liquidation_price`). The venue reports these figures itself: :func:`check_hyperliquid`
recomputes them from the decoded positions and returns every disagreement beyond its rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.perp import (
    FLOAT_RTOL,
    PerpBook,
    PerpHealth,
    VenueCheck,
    account_equity,
    book_health,
    book_health_many,
    check_against_venue,
    liquidation_price,
    position_maintenance,
    stack_books,
    tier_index,
)

__all__ = ["HYPERLIQUID_USD_QUANTUM", "HyperliquidFigures", "check_hyperliquid", "check_hyperliquid_many",
           "hyperliquid_health", "hyperliquid_health_many", "hyperliquid_tier_mmr", "stacked_hyperliquid_book"]

F64 = npt.NDArray[np.float64]

HYPERLIQUID_USD_QUANTUM = 1e-6
"""Hyperliquid prints USD amounts with 6 decimals (USDC's own precision)."""

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
    return book_health(book, labels, fig.coin)


def stacked_hyperliquid_book(
    figs: Sequence[HyperliquidFigures], mark_usd: Sequence[npt.ArrayLike | None] | None = None
) -> tuple[PerpBook, npt.NDArray[np.intp], npt.NDArray[np.intp], list[tuple[str, ...]]]:
    """Many accounts' books stacked into one (:func:`riskcore.perp.stack_books`): the book, each account's first
    margin account and first position (shape (b + 1,)), and each account's margin-account labels."""
    marks = list(mark_usd) if mark_usd is not None else [None] * len(figs)
    parts = [_hyperliquid_book(f, m) for f, m in zip(figs, marks, strict=True)]
    book, account_start, position_start = stack_books([b for b, _ in parts])
    return book, account_start, position_start, [labels for _, labels in parts]


def hyperliquid_health_many(
    figs: Sequence[HyperliquidFigures], mark_usd: Sequence[npt.ArrayLike | None] | None = None
) -> list[PerpHealth]:
    """:func:`hyperliquid_health` of many accounts, computed over one stacked book (equal to it, account by account,
    bit for bit; the per-account call cost ~0.5 ms of numpy overhead on a one-position book).

    Parameters
    ----------
    figs : sequence of HyperliquidFigures, length b
    mark_usd : sequence of (array_like of shape (n_i,) or None), length b, optional
        Each account's marks (None: implied by its reported ``positionValue``).
    """
    marks = list(mark_usd) if mark_usd is not None else [None] * len(figs)
    parts = [_hyperliquid_book(f, m) for f, m in zip(figs, marks, strict=True)]
    return book_health_many([b for b, _ in parts], [labels for _, labels in parts], [f.coin for f in figs])


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
    eq = account_equity(book)
    mm_pos = position_maintenance(book)
    liq = liquidation_price(book)
    notional = np.abs(book.size) * book.mark_usd
    t = tier_index(notional, book.tier_lower_usd)[:, None]
    rate = np.take_along_axis(book.tier_mmr, t, axis=1)[:, 0]
    group_terms = np.bincount(book.account, minlength=book.n_accounts)[book.account]
    return _check_figures(fig, book.size, book.mark_usd, book.account, eq, mm_pos, liq, rate, group_terms,
                          usd_quantum, rtol)


def check_hyperliquid_many(
    figs: Sequence[HyperliquidFigures], *, usd_quantum: float = HYPERLIQUID_USD_QUANTUM, rtol: float = 1e-7
) -> list[VenueCheck]:
    """:func:`check_hyperliquid` of many accounts, the figures computed over one stacked book (equal to it, account
    by account)."""
    book, acc, pos, _ = stacked_hyperliquid_book(figs)
    eq = account_equity(book)
    mm_pos = position_maintenance(book)
    liq = liquidation_price(book)
    notional = np.abs(book.size) * book.mark_usd
    t = tier_index(notional, book.tier_lower_usd)[:, None]
    rate = np.take_along_axis(book.tier_mmr, t, axis=1)[:, 0]
    group_terms = np.bincount(book.account, minlength=book.n_accounts)[book.account]
    out = []
    for i, fig in enumerate(figs):
        a0 = int(acc[i])
        p = slice(int(pos[i]), int(pos[i + 1]))
        out.append(_check_figures(fig, book.size[p], book.mark_usd[p], book.account[p] - a0,
                                  eq[a0 : int(acc[i + 1])], mm_pos[p], liq[p], rate[p], group_terms[p],
                                  usd_quantum, rtol))
    return out


def _check_figures(
    fig: HyperliquidFigures, size_: F64, mark: F64, account: npt.NDArray[np.intp], eq: F64, mm_pos: F64, liq: F64,
    rate: F64, group_terms: npt.NDArray[np.intp], usd_quantum: float, rtol: float,
) -> VenueCheck:
    """The comparison of :func:`check_hyperliquid` from one account's computed figures (shapes (n,) per position,
    ``eq`` (k,) per margin account, ``account`` indexing it)."""
    n = size_.shape[0]
    cross = np.asarray(fig.is_cross, dtype=bool)
    n_cross = int(cross.sum())
    fields: list[str] = ["crossMarginSummary.accountValue", "crossMaintenanceMarginUsed"]
    computed: list[float] = [float(eq[0]), float(mm_pos[cross].sum())]
    reported: list[float] = [fig.reported_cross_account_value_usd, fig.reported_cross_maintenance_usd]
    tol: list[float] = [
        (2 + n_cross) * usd_quantum + FLOAT_RTOL * abs(fig.reported_cross_account_value_usd),
        (1 + n_cross) * usd_quantum + FLOAT_RTOL * abs(fig.reported_cross_maintenance_usd),
    ]
    for i in range(n):
        coin = fig.coin[i]
        size = abs(float(size_[i]))
        side = 1.0 if size_[i] > 0 else -1.0
        usd_terms = 2 + 2 * int(group_terms[i])
        px_tol = usd_terms * usd_quantum / max(size * abs(1.0 - side * rate[i]), 1e-300)
        reported_liq = float(fig.reported_liquidation_px[i])
        fields.append(f"{coin}.liquidationPx")
        computed.append(float(liq[i]))
        reported.append(reported_liq)
        tol.append(px_tol + rtol * (abs(reported_liq) if np.isfinite(reported_liq) else 0.0))
        upnl = float(size_[i] * (mark[i] - fig.entry_px[i]))
        fields.append(f"{coin}.unrealizedPnl")
        computed.append(upnl)
        reported.append(float(fig.reported_unrealized_pnl_usd[i]))
        tol.append(3 * usd_quantum + FLOAT_RTOL * abs(upnl))
        if not cross[i]:
            fields.append(f"{coin}.marginUsed")
            computed.append(float(eq[account[i]]))
            reported.append(float(fig.reported_margin_used_usd[i]))
            tol.append(3 * usd_quantum + FLOAT_RTOL * abs(float(eq[account[i]])))
    return check_against_venue(fields, computed, reported, tol, venue="hyperliquid", account=fig.wallet)


# --- dYdX v4 -----------------------------------------------------------------------------------------
