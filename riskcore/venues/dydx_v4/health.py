"""dYdX v4's perp margin rule (``v4-chain``: ``x/perpetuals/types/liquidity_tier.go``, indexer
``comlink/src/lib/helpers.ts``).

Cash is the signed USDC asset position; ``P`` is the oracle price; a single tier with
``mmr = maintenanceMarginFraction`` (= base IMF × maintenance fraction, as the indexer reports it). Initial
margin: the effective IMF rises linearly from the base IMF to 1 between the liquidity tier's open-interest
lower and upper caps (:func:`dydx_initial_margin_fraction`); the indexer's ``freeCollateral`` is
``equity − Σ |s × P| × base IMF`` (it does not scale with open interest). :func:`check_dydx` recomputes the
indexer's figures from the decoded positions and returns every disagreement beyond its rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.perp import (
    PerpBook,
    PerpHealth,
    VenueCheck,
    account_equity,
    book_health,
    book_health_many,
    check_against_venue,
    free_collateral,
)

__all__ = ["DydxFigures", "check_dydx", "dydx_health", "dydx_health_many", "dydx_initial_margin_fraction"]

F64 = npt.NDArray[np.float64]

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
    return book_health(_dydx_book(fig, oracle_usd), (fig.account,), fig.market)


def dydx_health_many(figs: Sequence[DydxFigures], oracle_usd: Sequence[npt.ArrayLike | None] | None = None
                     ) -> list[PerpHealth]:
    """:func:`dydx_health` of many subaccounts over one stacked book (equal to it, subaccount by subaccount)."""
    oracles = list(oracle_usd) if oracle_usd is not None else [None] * len(figs)
    return book_health_many([_dydx_book(f, o) for f, o in zip(figs, oracles, strict=True)],
                            [(f.account,) for f in figs], [f.market for f in figs])


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
