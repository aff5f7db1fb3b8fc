"""dYdX v4's keeper part: the perp account is one planner venue (its equity and maintenance, no actions of its
own: the keeper plans around it)."""

from __future__ import annotations

from aggregator.config import KeeperConfig
from aggregator.keeper.plugin import NoActions, PlannerPair, TokenInfo, perp_planner_venues
from db import LatestVenueHealth

__all__ = ["KEEPER"]


class _PerpKeeper(NoActions):
    lending = False

    def planner_venues(self, item: LatestVenueHealth, cfg: KeeperConfig,
                       tokens: dict[str, TokenInfo]) -> list[PlannerPair]:
        return perp_planner_venues(item, cfg, "dydx_v4")


KEEPER = _PerpKeeper()
