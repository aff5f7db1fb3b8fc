"""Morpho Blue's liquidation terms, as the risk engines' isolated-market rule (``Rule.ISOLATED``) applies them.

``Morpho.liquidate`` has no close factor: the liquidator may repay the whole debt and seizes the repaid amount
times the market's liquidation incentive factor, ``min(1.15, 1 / (1 − 0.3 × (1 − LLTV)))``
(:func:`riskcore.venues.morpho_blue.health.liquidation_incentive_factor` is the exact integer form).
:func:`market_spec` builds a wallet's position in one market with its factor for :class:`riskcore.book.Book`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from riskcore.book import IsolatedMarketSpec
from riskcore.venues.morpho_blue.health import LIQUIDATION_CURSOR, MAX_LIQUIDATION_INCENTIVE_FACTOR, WAD

__all__ = ["incentive_factor", "market_spec"]

_MAX_LIF = MAX_LIQUIDATION_INCENTIVE_FACTOR / WAD
_CURSOR = LIQUIDATION_CURSOR / WAD


def incentive_factor(lltv: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The liquidation incentive factor ``min(1.15, 1 / (1 − 0.3 × (1 − LLTV)))`` in floating point.

    Parameters
    ----------
    lltv : array_like
        Liquidation LTV as a fraction (0.86).

    Returns
    -------
    ndarray
        The factor (≥ 1), shape of ``lltv``: 1.0438… at LLTV 86 %, 1.15 up to about 50 %.
    """
    x = np.asarray(lltv, dtype=np.float64)
    return np.asarray(np.minimum(_MAX_LIF, 1.0 / (1.0 - _CURSOR * (1.0 - x))), dtype=np.float64)


def market_spec(
    collateral_asset: str, collateral: float, loan_asset: str, debt: float, lltv: float, venue: str = "isolated"
) -> IsolatedMarketSpec:
    """One wallet's position in one Morpho market with the market's incentive factor.

    Parameters
    ----------
    collateral_asset, loan_asset : str
        The market's two assets (book underlyings).
    collateral, debt : float
        Whole tokens.
    lltv : float
        The market's LLTV as a fraction.
    venue : str
        The venue's name in the book.

    Returns
    -------
    IsolatedMarketSpec
        With ``lif`` = :func:`incentive_factor` of ``lltv``.
    """
    return IsolatedMarketSpec(collateral_asset, collateral, loan_asset, debt, lltv,
                              lif=float(incentive_factor(lltv)), venue=venue)
