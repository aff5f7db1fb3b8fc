"""Uniswap v3's keeper part: ranges are not collateral anywhere and are not planned."""

from __future__ import annotations

from aggregator.config import KeeperConfig
from aggregator.keeper.plugin import NoActions, PlannerPair, TokenInfo
from db import LatestVenueHealth

__all__ = ["KEEPER"]


class _NotPlanned(NoActions):
    lending = False

    def planner_venues(self, item: LatestVenueHealth, cfg: KeeperConfig,
                       tokens: dict[str, TokenInfo]) -> list[PlannerPair]:
        return []


KEEPER = _NotPlanned()
