"""Morpho Blue: a position's assets and health recomputed from its cached shares and one block's market.

A position no event touched since it was read keeps its supply shares, borrow shares and collateral (Morpho
stores nothing else per position); what moves is the market: the totals accrue (``_accrueInterest`` at the
block's timestamp, :func:`~riskcore.venues.morpho_blue.health.accrue_interest`) and the oracle's price. So at a
later block, with that block's accrued totals and price (``morpho-blue`` 1.0.0, ``SharesMathLib``):

* supply assets ``toAssetsDown(supplyShares)`` (what ``withdraw`` of every share pays),
* borrow assets ``toAssetsUp(borrowShares)`` (rounded against the borrower, what ``_isHealthy`` counts),
* healthy when ``collateral · price / 1e36 · lltv`` (both rounded down) ≥ the borrow assets.

Pure integers: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from riskcore.venues.morpho_blue.health import (
    MorphoMarketState,
    MorphoPositionHealth,
    position_health,
    to_assets_down,
    to_assets_up,
)

__all__ = ["MorphoCachedPosition", "MorphoRecomputed", "position_assets", "recompute_position"]


@dataclass(frozen=True, slots=True)
class MorphoCachedPosition:
    """``Morpho.position(id, user)`` as read at some earlier block: shares and collateral (raw units)."""

    supply_shares: int
    borrow_shares: int
    collateral_raw: int


@dataclass(frozen=True, slots=True)
class MorphoRecomputed:
    """A cached position at a later block: its assets (loan-token raw units) and the health rule's verdict."""

    supply_assets_raw: int
    borrow_assets_raw: int
    health: MorphoPositionHealth


def position_assets(position: MorphoCachedPosition, accrued: MorphoMarketState) -> tuple[int, int]:
    """``(toAssetsDown(supplyShares), toAssetsUp(borrowShares))`` on ``accrued``'s totals (the market after
    :func:`~riskcore.venues.morpho_blue.health.accrue_interest` to the block), loan-token raw units."""
    supply = to_assets_down(position.supply_shares, accrued.total_supply_assets, accrued.total_supply_shares)
    borrow = to_assets_up(position.borrow_shares, accrued.total_borrow_assets, accrued.total_borrow_shares)
    return supply, borrow


def recompute_position(
    position: MorphoCachedPosition, accrued: MorphoMarketState, price_raw: int, lltv_wad: int
) -> MorphoRecomputed:
    """The position at the block whose accrued totals, oracle price (1e36-scaled, loan per collateral raw unit)
    and LLTV (WAD) are given: its assets and ``_isHealthy``'s figures, exact integers."""
    supply, borrow = position_assets(position, accrued)
    health = position_health(position.collateral_raw, position.borrow_shares, accrued, price_raw, lltv_wad)
    return MorphoRecomputed(supply_assets_raw=supply, borrow_assets_raw=borrow, health=health)
