"""What the dYdX v4 indexer would report for a subaccount at other oracle prices, from its cached positions: the
local recompute that replaces a per-block re-read of every subaccount.

The USDC asset position and the sizes do not move with prices, so ``equity`` and ``freeCollateral`` at a new block
are pure functions of the cached figures and that block's oracle prices (:func:`dydx_reported_at`), equal to a
fresh read to the indexer's exact decimals up to float64 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.perp import account_equity, free_collateral
from riskcore.venues.dydx_v4.health import DydxFigures, _dydx_book

__all__ = ["DydxReport", "dydx_reported_at"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DydxReport:
    """A subaccount's indexer figures, recomputed (USD): ``equity``, ``freeCollateral`` and each position's
    ``unrealizedPnl`` (shape (n,)), given the entry prices."""

    equity_usd: float
    free_collateral_usd: float
    unrealized_pnl_usd: F64


def dydx_reported_at(fig: DydxFigures, oracle_usd: npt.ArrayLike, entry_px: npt.ArrayLike | None = None) -> DydxReport:
    """Revalue a cached subaccount at new oracle prices.

    Parameters
    ----------
    fig : DydxFigures
        The subaccount as last read.
    oracle_usd : array_like of shape (n,)
        Each position's oracle price at the new block, USD per unit (same order as ``fig.market``).
    entry_px : array_like of shape (n,), optional
        Entry prices (USD per unit), for the unrealized P&L; ``nan`` P&L without them.
    """
    book = _dydx_book(fig, oracle_usd)
    entry = np.full(book.size.shape[0], np.nan) if entry_px is None else np.asarray(entry_px, dtype=np.float64)
    return DydxReport(
        equity_usd=float(account_equity(book)[0]),
        free_collateral_usd=float(free_collateral(book, fig.initial_margin_fraction)[0]),
        unrealized_pnl_usd=np.asarray(book.size * (book.mark_usd - entry), dtype=np.float64),
    )
