"""What Hyperliquid's ``clearinghouseState`` would report at other marks, from cached positions: the local
recompute that replaces a per-block re-read of every wallet.

Positions and cash (``totalRawUsd``, an isolated position's ``rawUsd``) do not move with prices; only the marks do.
So the account value, the maintenance requirement, each liquidation price and each unrealized P&L at a new block
are pure functions of the cached figures and that block's marks (:func:`hyperliquid_reported_at`), equal to a
fresh full read within the venue's printed rounding (USD printed to 1e-6; see
:func:`~riskcore.venues.hyperliquid.health.check_hyperliquid` for the propagated bound).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.perp import account_equity, liquidation_price, position_maintenance
from riskcore.venues.hyperliquid.health import HyperliquidFigures, _hyperliquid_book, stacked_hyperliquid_book

__all__ = ["HyperliquidReport", "hyperliquid_reported_at", "hyperliquid_reported_at_many"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class HyperliquidReport:
    """The figures a ``clearinghouseState`` reports, recomputed. Shapes: (n,) per position.

    Attributes
    ----------
    cross_account_value_usd : float
        ``crossMarginSummary.accountValue`` (USD).
    cross_maintenance_usd : float
        ``crossMaintenanceMarginUsed`` (USD).
    position_value_usd, unrealized_pnl_usd, liquidation_px, margin_used_usd : ndarray of shape (n,)
        Per position, USD (``liquidation_px``: USD per unit, ``nan`` where none; ``margin_used_usd``: the isolated
        position's equity, ``nan`` for cross positions).
    """

    cross_account_value_usd: float
    cross_maintenance_usd: float
    position_value_usd: F64
    unrealized_pnl_usd: F64
    liquidation_px: F64
    margin_used_usd: F64


def hyperliquid_reported_at(fig: HyperliquidFigures, mark_usd: npt.ArrayLike) -> HyperliquidReport:
    """Revalue a cached Hyperliquid account at new marks.

    Parameters
    ----------
    fig : HyperliquidFigures
        The account as last read (positions, cash, tier tables).
    mark_usd : array_like of shape (n,)
        Each position's mark at the new block, USD per unit (same order as ``fig.coin``).

    Returns
    -------
    HyperliquidReport
    """
    book, _ = _hyperliquid_book(fig, mark_usd)
    mark = book.mark_usd
    size = book.size
    eq = account_equity(book)
    mm = position_maintenance(book)
    cross = np.asarray(fig.is_cross, dtype=bool)
    margin_used = np.where(cross, np.nan, eq[book.account]) if size.shape[0] else np.zeros(0)
    return HyperliquidReport(
        cross_account_value_usd=float(eq[0]),
        cross_maintenance_usd=float(mm[cross].sum()),
        position_value_usd=np.asarray(np.abs(size) * mark, dtype=np.float64),
        unrealized_pnl_usd=np.asarray(size * (mark - np.asarray(fig.entry_px, dtype=np.float64)), dtype=np.float64),
        liquidation_px=np.asarray(liquidation_price(book), dtype=np.float64),
        margin_used_usd=np.asarray(margin_used, dtype=np.float64),
    )


def hyperliquid_reported_at_many(
    figs: Sequence[HyperliquidFigures], mark_usd: Sequence[npt.ArrayLike]
) -> list[HyperliquidReport]:
    """:func:`hyperliquid_reported_at` of many accounts over one stacked book (equal to it, account by account).

    Parameters
    ----------
    figs : sequence of HyperliquidFigures, length b
    mark_usd : sequence of array_like of shape (n_i,), length b
        Each account's marks at the new block, USD per unit.
    """
    book, acc, pos, _ = stacked_hyperliquid_book(figs, mark_usd)
    mark = book.mark_usd
    size = book.size
    eq = account_equity(book)
    mm = position_maintenance(book)
    liq = np.asarray(liquidation_price(book), dtype=np.float64)
    value = np.asarray(np.abs(size) * mark, dtype=np.float64)
    out = []
    for i, fig in enumerate(figs):
        a0 = int(acc[i])
        p = slice(int(pos[i]), int(pos[i + 1]))
        cross = np.asarray(fig.is_cross, dtype=bool)
        local = book.account[p] - a0
        eq_i = eq[a0 : int(acc[i + 1])]
        margin_used = np.where(cross, np.nan, eq_i[local]) if size[p].shape[0] else np.zeros(0)
        out.append(HyperliquidReport(
            cross_account_value_usd=float(eq_i[0]),
            cross_maintenance_usd=float(mm[p][cross].sum()),
            position_value_usd=value[p].copy(),
            unrealized_pnl_usd=np.asarray(size[p] * (mark[p] - np.asarray(fig.entry_px, dtype=np.float64)),
                                          dtype=np.float64),
            liquidation_px=liq[p].copy(),
            margin_used_usd=np.asarray(margin_used, dtype=np.float64),
        ))
    return out
