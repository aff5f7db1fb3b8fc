"""Aave v3's keeper part: each Aave market is one planner venue (health = Σ collateral × threshold / Σ debt, the
reserves' own thresholds, e-mode's where it applies)."""

from __future__ import annotations

from aggregator.config import KeeperConfig
from aggregator.keeper.plugin import PlannedVenue, PlannerPair, StateError, TokenInfo, note_token
from aggregator.venues.aave_v3.detail import AavePositionDetail
from aggregator.venues.detail import parse
from db import LatestVenueHealth
from riskcore.rebalance import CollateralLine, DebtLine, LendingVenue

__all__ = ["KEEPER", "AaveV3Keeper"]


class AaveV3Keeper:
    lending = True

    def planner_venues(self, item: LatestVenueHealth, cfg: KeeperConfig,
                       tokens: dict[str, TokenInfo]) -> list[PlannerPair]:
        collateral: list[CollateralLine] = []
        debt: list[DebtLine] = []
        coll_raw: dict[str, int] = {}
        debt_raw: dict[str, int] = {}
        for p in item.snapshot.positions:
            note_token(tokens, p.asset.address, p.asset.symbol, p.asset.decimals, p.price_usd, item.venue)
            if p.side == "collateral" and p.is_collateral:
                bps = parse(AavePositionDetail, p.extra).liquidation_threshold_bps
                if bps is None:
                    raise StateError(f"{item.venue}: {p.asset.symbol} collateral without its liquidation threshold")
                collateral.append(CollateralLine(token=p.asset.address, amount=p.amount, threshold=bps / 10_000))
                coll_raw[p.asset.address] = p.amount_raw
            elif p.side == "debt":
                debt.append(DebtLine(token=p.asset.address, amount=p.amount))
                debt_raw[p.asset.address] = p.amount_raw
        target = cfg.target(item.venue)
        return [(LendingVenue(name=item.venue, collateral=tuple(collateral), debt=tuple(debt), target=target.target,
                              offset=target.offset),
                 PlannedVenue(venue=item.venue, protocol="aave_v3", market_key=None, collateral_raw=coll_raw,
                              debt_raw=debt_raw))]


KEEPER = AaveV3Keeper()
