"""Hyperliquid's what-if part: the account's margin rule (:func:`riskcore.venues.hyperliquid.health
.hyperliquid_health`) rerun with a what-if price as the perp's mark; the venue takes no change."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np

from aggregator.venues.hyperliquid.detail import HyperliquidAccountDetail, HyperliquidPerpDetail
from aggregator.venues.whatif import PERP_STATE_FIELDS, PartBase, PerpWhatIf, VenueWhatIf, WhatIfContext, replay_detail
from db.rows import LatestVenueHealth
from riskcore.perp import PerpHealth
from riskcore.venues.hyperliquid.health import HyperliquidFigures, hyperliquid_health

__all__ = ["WHATIF", "HyperliquidState", "HyperliquidWhatIf"]


class HyperliquidState(PerpWhatIf):
    """A Hyperliquid account: cross account and isolated positions, margined by leverage tiers."""

    def _read_detail(self) -> list[float]:
        assert self.snap.health is not None
        self.account = replay_detail(HyperliquidAccountDetail, self.snap.health.extra, self.venue, self.snap)
        self.details = [replay_detail(HyperliquidPerpDetail, p.extra, self.venue, self.snap) for p in self.perps]
        return [d.mark_usd for d in self.details]

    def _health(self, marks: np.ndarray[Any, np.dtype[np.float64]]) -> PerpHealth:
        n = len(self.perps)
        nan = np.full(n, np.nan)
        width = max((len(d.tier_lower_usd) for d in self.details), default=1)
        lower = np.full((n, width), np.inf)
        lev = np.full((n, width), np.nan)
        for i, d in enumerate(self.details):
            lower[i, : len(d.tier_lower_usd)] = d.tier_lower_usd
            lev[i, : len(d.tier_max_leverage)] = d.tier_max_leverage
        szi = np.array([float(Decimal(str(d.szi))) for d in self.details], dtype=np.float64)
        fig = HyperliquidFigures(
            wallet=self.snap.wallet, coin=tuple(p.asset.symbol for p in self.perps), szi=szi,
            position_value_usd=np.abs(szi) * marks, entry_px=nan,
            is_cross=np.array([d.cross for d in self.details], dtype=bool),
            isolated_raw_usd=np.array([np.nan if d.isolated_raw_usd is None else d.isolated_raw_usd
                                       for d in self.details]),
            tier_lower_usd=lower, tier_max_leverage=lev, cross_raw_usd=self.account.cross_raw_usd,
            reported_cross_account_value_usd=math.nan, reported_cross_maintenance_usd=math.nan,
            reported_liquidation_px=nan, reported_margin_used_usd=nan, reported_unrealized_pnl_usd=nan)
        return hyperliquid_health(fig, marks)


class HyperliquidWhatIf(PartBase):
    api_engine_doc = "perps by their margin rules"
    api_state_fields: ClassVar[Mapping[str, tuple[Any, Any]]] = PERP_STATE_FIELDS

    def open(self, item: LatestVenueHealth, ctx: WhatIfContext) -> VenueWhatIf:
        return HyperliquidState(item, ctx)


WHATIF = HyperliquidWhatIf()
