"""dYdX v4's what-if part: the subaccount's margin rule (:func:`riskcore.venues.dydx_v4.health.dydx_health`)
rerun with a what-if price as the market's oracle price; the venue takes no change."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from aggregator.venues.dydx_v4.detail import DydxAccountDetail, DydxPerpDetail
from aggregator.venues.whatif import PERP_STATE_FIELDS, PartBase, PerpWhatIf, VenueWhatIf, WhatIfContext, replay_detail
from db.rows import LatestVenueHealth
from riskcore.perp import PerpHealth
from riskcore.venues.dydx_v4.health import DydxFigures, dydx_health

__all__ = ["WHATIF", "DydxV4State", "DydxV4WhatIf"]


class DydxV4State(PerpWhatIf):
    """A dYdX v4 subaccount: one cross account, margined by each market's fractions."""

    def _read_detail(self) -> list[float]:
        assert self.snap.health is not None
        self.account = replay_detail(DydxAccountDetail, self.snap.health.extra, self.venue, self.snap)
        self.details = [replay_detail(DydxPerpDetail, p.extra, self.venue, self.snap) for p in self.perps]
        return [d.mark_usd for d in self.details]

    def _health(self, marks: np.ndarray[Any, np.dtype[np.float64]]) -> PerpHealth:
        first = self.details[0].account if self.details else None
        fig = DydxFigures(
            account=first if first is not None else self.snap.wallet,
            market=tuple(p.asset.symbol for p in self.perps),
            size=np.array([d.size for d in self.details], dtype=np.float64), oracle_usd=marks,
            initial_margin_fraction=np.array([d.initial_margin_fraction for d in self.details]),
            maintenance_margin_fraction=np.array([d.maintenance_margin_fraction for d in self.details]),
            usdc_usd=self.account.usdc_usd, reported_equity_usd=math.nan, reported_free_collateral_usd=math.nan)
        return dydx_health(fig, marks)


class DydxV4WhatIf(PartBase):
    api_engine_doc = "perps by their margin rules"
    api_state_fields: ClassVar[Mapping[str, tuple[Any, Any]]] = PERP_STATE_FIELDS

    def open(self, item: LatestVenueHealth, ctx: WhatIfContext) -> VenueWhatIf:
        return DydxV4State(item, ctx)


WHATIF = DydxV4WhatIf()
