"""Aave v3's liquidation terms, as the risk engines' pooled-lending rule (``Rule.LENDING``) applies them.

``LiquidationLogic.executeLiquidationCall`` lets one call repay at most ``DEFAULT_LIQUIDATION_CLOSE_FACTOR``
(50 %) of the debt, or all of it once the health factor is at or below ``CLOSE_FACTOR_HF_THRESHOLD`` (0.95), and
pays the liquidator the collateral reserve's liquidation bonus on top. :func:`account_spec` builds a wallet's
account with these terms for :class:`riskcore.book.Book`.
"""

from __future__ import annotations

from collections.abc import Mapping

from riskcore.book import LendingAccountSpec

__all__ = ["CLOSE_FACTOR", "DEFAULT_BONUS", "FULL_CLOSE_HF", "account_spec"]

CLOSE_FACTOR = 0.5
"""``LiquidationLogic.DEFAULT_LIQUIDATION_CLOSE_FACTOR``: the share of the debt one call may repay."""
FULL_CLOSE_HF = 0.95
"""``LiquidationLogic.CLOSE_FACTOR_HF_THRESHOLD``: at or below this health factor the close factor is 100 %."""
DEFAULT_BONUS = 0.05
"""The liquidation bonus net of 1 (10,500 bps) assumed for an account without collateral value to weigh its
reserves' bonuses by."""


def account_spec(
    collateral: Mapping[str, tuple[float, float]],
    debt: Mapping[str, float],
    bonus: float = DEFAULT_BONUS,
    venue: str = "lending",
) -> LendingAccountSpec:
    """One wallet's Aave account with the protocol's liquidation terms.

    Parameters
    ----------
    collateral : mapping of asset to (amount, liquidation threshold)
        Whole tokens and the reserve's LT as a fraction (0 for a supply not used as collateral).
    debt : mapping of asset to amount
        Whole tokens owed.
    bonus : float
        The liquidation bonus net of 1 (0.05 for 10,500 bps).
    venue : str
        The venue's name in the book.

    Returns
    -------
    LendingAccountSpec
        With :data:`CLOSE_FACTOR` and :data:`FULL_CLOSE_HF`.
    """
    return LendingAccountSpec(collateral, debt, bonus=bonus, close_factor=CLOSE_FACTOR,
                              full_close_hf=FULL_CLOSE_HF, venue=venue)
