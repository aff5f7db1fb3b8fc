"""Morpho Blue's keeper part: each market the wallet holds a position in is one planner venue named
``<venue>:<market id>`` (one collateral, one loan token, LLTV)."""

from __future__ import annotations

from aggregator.config import KeeperConfig
from aggregator.keeper.plugin import PlannedVenue, PlannerPair, StateError, TokenInfo, note_token
from aggregator.venues.detail import parse
from aggregator.venues.morpho_blue.detail import MorphoHealthDetail
from db import LatestVenueHealth, PositionRow
from riskcore.rebalance import CollateralLine, DebtLine, LendingVenue

__all__ = ["KEEPER", "MorphoBlueKeeper"]


class MorphoBlueKeeper:
    lending = True

    def planner_venues(self, item: LatestVenueHealth, cfg: KeeperConfig,
                       tokens: dict[str, TokenInfo]) -> list[PlannerPair]:
        assert item.health is not None
        markets = parse(MorphoHealthDetail, item.health.extra).by_market()
        by_market: dict[str, list[PositionRow]] = {}
        for p in item.snapshot.positions:
            if p.market_key is not None:
                by_market.setdefault(p.market_key, []).append(p)
        out: list[PlannerPair] = []
        target = cfg.target(item.venue)
        for key, positions in by_market.items():
            detail = markets.get(key)
            if detail is None:
                raise StateError(f"{item.venue}: no parameters stored for market {key}")
            lltv = detail.lltv
            collateral: list[CollateralLine] = []
            debt: list[DebtLine] = []
            coll_raw: dict[str, int] = {}
            debt_raw: dict[str, int] = {}
            for p in positions:
                if p.price_usd is None:
                    raise StateError(f"{item.venue}: {p.asset.symbol} has no USD price")
                note_token(tokens, p.asset.address, p.asset.symbol, p.asset.decimals, p.price_usd, item.venue)
                if p.side == "collateral":
                    # Morpho values collateral with the market's own oracle, which may differ from the token's USD
                    # price used for every venue: scale the LLTV so that the planner's health is Morpho's.
                    scale = p.price_usd / tokens[p.asset.address].price_usd
                    collateral.append(CollateralLine(token=p.asset.address, amount=p.amount,
                                                     threshold=lltv * scale))
                    coll_raw[p.asset.address] = p.amount_raw
                elif p.side == "debt":
                    debt.append(DebtLine(token=p.asset.address, amount=p.amount))
                    debt_raw[p.asset.address] = p.amount_raw
            if not debt and not collateral:
                continue
            out.append((LendingVenue(name=f"{item.venue}:{key}", collateral=tuple(collateral), debt=tuple(debt),
                                     target=target.target, offset=target.offset),
                        PlannedVenue(venue=item.venue, protocol="morpho_blue", market_key=key,
                                     collateral_raw=coll_raw, debt_raw=debt_raw)))
        return out


KEEPER = MorphoBlueKeeper()
