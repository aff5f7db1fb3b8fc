"""Morpho Blue 1.0 what-if replays: a position's own actions with ``Morpho.sol``'s arithmetic.

Shares with ``SharesMathLib``'s roundings, totals moved as the contract moves them
(:func:`morpho_supply_collateral`, :func:`morpho_withdraw_collateral`, :func:`morpho_borrow`, :func:`morpho_repay`,
:func:`morpho_supply`, :func:`morpho_withdraw`), on totals already accrued to the timestamp; the health is
:func:`riskcore.venues.morpho_blue.health.position_health`. An oracle follows a USD price move by the ratio of the
two tokens' USD prices (:func:`morpho_oracle_price`).

Units (see :mod:`riskcore.whatif`): token units, oracle prices scaled by 1e36, ``*_wad`` 1e18. No I/O, no floats.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from riskcore.venues.morpho_blue.health import (
    MorphoMarketState,
    MorphoPositionHealth,
    is_healthy,
    position_health,
    to_assets_down,
    to_assets_up,
    to_shares_down,
    to_shares_up,
)
from riskcore.whatif import positive, ratio_price

__all__ = [
    "MorphoPosition",
    "MorphoStep",
    "morpho_borrow",
    "morpho_oracle_price",
    "morpho_repay",
    "morpho_supply",
    "morpho_supply_collateral",
    "morpho_withdraw",
    "morpho_withdraw_collateral",
]


@dataclass(frozen=True, slots=True)
class MorphoPosition:
    """``Morpho.position(id, user)``: supply shares, borrow shares, collateral (raw units)."""

    supply_shares: int = 0
    borrow_shares: int = 0
    collateral_raw: int = 0


@dataclass(frozen=True, slots=True)
class MorphoStep:
    """A position and its market after one action, and why ``Morpho`` would revert it (None: it would not)."""

    position: MorphoPosition
    market: MorphoMarketState
    refused: str | None = None

    def health(self, price_raw: int, lltv_wad: int) -> MorphoPositionHealth:
        """:func:`riskcore.venues.morpho_blue.health.position_health` of the position after the action."""
        return position_health(self.position.collateral_raw, self.position.borrow_shares, self.market, price_raw,
                               lltv_wad)


def morpho_supply_collateral(p: MorphoPosition, m: MorphoMarketState, assets: int) -> MorphoStep:
    """``supplyCollateral``: the collateral grows by ``assets``; the market's totals do not move."""
    positive(assets)
    return MorphoStep(dataclasses.replace(p, collateral_raw=p.collateral_raw + assets), m)


def morpho_withdraw_collateral(p: MorphoPosition, m: MorphoMarketState, assets: int, price_raw: int,
                               lltv_wad: int) -> MorphoStep:
    """``withdrawCollateral``: the collateral falls by ``assets``; the position must stay healthy
    (``INSUFFICIENT_COLLATERAL`` otherwise).

    Raises
    ------
    ValueError
        ``assets`` exceeds the collateral (an underflow revert on-chain).
    """
    positive(assets)
    if assets > p.collateral_raw:
        raise ValueError(f"withdrawing {assets} of collateral {p.collateral_raw}")
    after = dataclasses.replace(p, collateral_raw=p.collateral_raw - assets)
    healthy = is_healthy(after.collateral_raw, after.borrow_shares, m, price_raw, lltv_wad)
    return MorphoStep(after, m, None if healthy else "insufficient collateral (the position would be unhealthy)")


def morpho_borrow(p: MorphoPosition, m: MorphoMarketState, assets: int, price_raw: int,
                  lltv_wad: int) -> MorphoStep:
    """``borrow(assets)``: ``shares = assets.toSharesUp(totalBorrowAssets, totalBorrowShares)`` added to the
    position and both totals; then the position must be healthy (``INSUFFICIENT_COLLATERAL``) and the market
    liquid (``totalBorrowAssets <= totalSupplyAssets``, ``INSUFFICIENT_LIQUIDITY``)."""
    positive(assets)
    shares = to_shares_up(assets, m.total_borrow_assets, m.total_borrow_shares)
    market = dataclasses.replace(m, total_borrow_assets=m.total_borrow_assets + assets,
                                 total_borrow_shares=m.total_borrow_shares + shares)
    after = dataclasses.replace(p, borrow_shares=p.borrow_shares + shares)
    refused = None
    if not is_healthy(after.collateral_raw, after.borrow_shares, market, price_raw, lltv_wad):
        refused = "insufficient collateral (the position would be unhealthy)"
    elif market.total_borrow_assets > market.total_supply_assets:
        refused = "insufficient liquidity (the market has less to lend)"
    return MorphoStep(after, market, refused)


def morpho_repay(p: MorphoPosition, m: MorphoMarketState, assets: int) -> MorphoStep:
    """``repay``: repaying exactly what is owed (``borrowShares.toAssetsUp``) repays every share (as
    ``repay(0, shares)`` does); a part repays ``assets.toSharesDown(totalBorrowAssets, totalBorrowShares)`` shares.
    ``totalBorrowAssets`` falls by the assets, floored at 0.

    Raises
    ------
    ValueError
        ``assets`` exceeds what is owed.
    """
    positive(assets)
    owed = to_assets_up(p.borrow_shares, m.total_borrow_assets, m.total_borrow_shares)
    if assets > owed:
        raise ValueError(f"repaying {assets}, more than the {owed} owed")
    shares = p.borrow_shares if assets == owed else to_shares_down(assets, m.total_borrow_assets,
                                                                    m.total_borrow_shares)
    market = dataclasses.replace(m, total_borrow_assets=max(m.total_borrow_assets - assets, 0),
                                 total_borrow_shares=m.total_borrow_shares - shares)
    return MorphoStep(dataclasses.replace(p, borrow_shares=p.borrow_shares - shares), market)


def morpho_supply(p: MorphoPosition, m: MorphoMarketState, assets: int) -> MorphoStep:
    """``supply(assets)`` (lending the loan token): ``assets.toSharesDown(totalSupplyAssets, totalSupplyShares)``
    shares to the position and both totals."""
    positive(assets)
    shares = to_shares_down(assets, m.total_supply_assets, m.total_supply_shares)
    market = dataclasses.replace(m, total_supply_assets=m.total_supply_assets + assets,
                                 total_supply_shares=m.total_supply_shares + shares)
    return MorphoStep(dataclasses.replace(p, supply_shares=p.supply_shares + shares), market)


def morpho_withdraw(p: MorphoPosition, m: MorphoMarketState, assets: int) -> MorphoStep:
    """``withdraw`` of lent assets: exactly the claim (``supplyShares.toAssetsDown``) withdraws every share;
    a part burns ``assets.toSharesUp(totalSupplyAssets, totalSupplyShares)``; the market must stay liquid.

    Raises
    ------
    ValueError
        ``assets`` exceeds the claim.
    """
    positive(assets)
    claim = to_assets_down(p.supply_shares, m.total_supply_assets, m.total_supply_shares)
    if assets > claim:
        raise ValueError(f"withdrawing {assets}, more than the {claim} supplied")
    shares = p.supply_shares if assets == claim else to_shares_up(assets, m.total_supply_assets,
                                                                   m.total_supply_shares)
    market = dataclasses.replace(m, total_supply_assets=m.total_supply_assets - assets,
                                 total_supply_shares=m.total_supply_shares - shares)
    refused = None if market.total_borrow_assets <= market.total_supply_assets else (
        "insufficient liquidity (the market has lent it out)")
    return MorphoStep(dataclasses.replace(p, supply_shares=p.supply_shares - shares), market, refused)


def morpho_oracle_price(price_raw: int, collateral_usd_raw: tuple[int, int], loan_usd_raw: tuple[int, int]) -> int:
    """A Morpho oracle's price after the two tokens' USD prices move.

    Parameters
    ----------
    price_raw : int
        ``IOracle.price()`` now (loan raw units per collateral raw unit × 1e36).
    collateral_usd_raw, loan_usd_raw : (int, int)
        Each token's USD price (any fixed scale, the same within a pair) before and after.

    Returns
    -------
    int
        ``price × coll_after × loan_before / (coll_before × loan_after)`` rounded down: the oracle moves by the
        ratio of the two USD prices, as a feed-ratio oracle (``MorphoChainlinkOracleV2``: base feed / quote feed)
        does. Exactly the feed oracle's own ``scale × coll / loan`` when ``price`` was that ratio without
        remainder (stablecoins at $1, e.g.).
    """
    return ratio_price(price_raw, collateral_usd_raw, loan_usd_raw)
