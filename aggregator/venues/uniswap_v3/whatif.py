"""Uniswap v3's what-if part: each range revalued (float) as if its pool moved to the two tokens' USD ratio at the
what-if prices (the fees of that move left out); the venue takes no change."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from aggregator.venues.detail import parse
from aggregator.venues.uniswap_v3.detail import UniswapLegDetail
from aggregator.venues.whatif import PartBase, PricesOnly, VenueWhatIf, WhatIfContext, position_doc, price_key
from db.rows import LatestVenueHealth, PositionRow, PositionSide, SnapshotRow
from riskcore.clmm import amounts_float
from riskcore.units import from_raw
from riskcore.venues.uniswap_v3.position import get_sqrt_ratio_at_tick

__all__ = ["WHATIF", "UniswapV3State", "UniswapV3WhatIf"]


class UniswapV3State(PricesOnly):
    """The wallet's ranges: revalued (float) as if each pool moved to its two tokens' USD ratio."""

    kind = "lp"

    def _positions(self) -> tuple[PositionRow, ...]:
        legs: dict[str, list[tuple[PositionRow, UniswapLegDetail]]] = {}
        for p in self.snap.positions:
            if p.side is PositionSide.LP:
                stored = parse(UniswapLegDetail, p.extra)
                legs.setdefault(str(stored.token_id), []).append((p, stored))
        out: list[PositionRow] = [p for p in self.snap.positions if p.side is not PositionSide.LP]
        for found in legs.values():
            pair = [p for p, _ in found]
            keys = [price_key(p.asset.symbol) for p in pair]
            if len(pair) != 2 or not any(k in self.moved for k in keys) or any(p.price_usd is None for p in pair):
                out.extend(self._repriced(p) for p in pair)
                continue
            (t0, d0_leg), (t1, d1_leg) = found
            p0 = float(self.moved.get(keys[0], t0.price_usd or 0.0))
            p1 = float(self.moved.get(keys[1], t1.price_usd or 0.0))
            d0, d1 = t0.asset.decimals, t1.asset.decimals
            sqrt_price = math.sqrt(p0 / p1 * 10 ** (d1 - d0))
            lo = get_sqrt_ratio_at_tick(d0_leg.tick_lower) / 2**96
            hi = get_sqrt_ratio_at_tick(d0_leg.tick_upper) / 2**96
            a0, a1 = amounts_float(float(d0_leg.liquidity), sqrt_price, lo, hi)
            for leg, detail, principal, price in ((t0, d0_leg, float(a0), p0), (t1, d1_leg, float(a1), p1)):
                raw = round(principal) + detail.fees_raw
                amount = from_raw(raw, leg.asset.decimals)
                out.append(dataclasses.replace(leg, amount_raw=raw, amount=amount, price_usd=price,
                                               value_usd=amount * price,
                                               extra={**leg.extra, "principal_raw": str(round(principal))}))
        return tuple(out)

    def state(self) -> dict[str, Any]:
        rows = self._positions()
        value = sum(p.value_usd or 0.0 for p in rows)
        return {"health_factor": None, "health_factor_raw": None, "healthy": True, "collateral_usd": value,
                "debt_usd": 0.0, "positions": [position_doc(p) for p in rows]}

    def snapshot(self) -> SnapshotRow:
        rows = self._positions()
        assert self.snap.health is not None
        health = dataclasses.replace(self.snap.health, collateral_usd=sum(p.value_usd or 0.0 for p in rows))
        return dataclasses.replace(self.snap, positions=rows, health=health)


class UniswapV3WhatIf(PartBase):
    changed_note = ("uniswap_v3: ranges revalued as if each pool moved to its tokens' USD ratio (the fees of that "
                    "move are not included)")

    def open(self, item: LatestVenueHealth, ctx: WhatIfContext) -> VenueWhatIf:
        return UniswapV3State(item, ctx)


WHATIF = UniswapV3WhatIf()
