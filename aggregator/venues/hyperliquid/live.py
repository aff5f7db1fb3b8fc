"""Hyperliquid kept live: marks from one ``metaAndAssetCtxs`` per block, ``clearinghouseState`` from the user
stream (at most 10 users per IP) and budgeted polls, each account revalued at the block's marks by the venue's rule
(:func:`riskcore.venues.hyperliquid.recompute.hyperliquid_reported_at`) and evaluated as a fresh read would be."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from aggregator.venues.hyperliquid import sync
from aggregator.views import VenueReading
from connectors.http import snapshot_time
from connectors.hyperliquid.models import HyperliquidAccount, HyperliquidMarket, HyperliquidSnapshot
from connectors.perpcache import PerpMarks
from connectors.types import BlockRef
from riskcore.venues.hyperliquid.health import HyperliquidFigures
from riskcore.venues.hyperliquid.recompute import HyperliquidReport, hyperliquid_reported_at_many

__all__ = ["evaluate", "revalue", "revalue_many"]

_USD = Decimal("0.000001")
_PX = Decimal("0.00000001")


def _usd(x: float) -> Decimal:
    return Decimal(repr(float(x))).quantize(_USD)


def revalue(account: HyperliquidAccount, market: HyperliquidMarket, marks: PerpMarks) -> HyperliquidAccount:
    """``account`` as ``clearinghouseState`` would print it at ``marks`` (USD to 6 decimals, prices to 8): positions and
    cash as cached, every mark-dependent figure recomputed. A coin without a mark keeps its cached mark."""
    return revalue_many((account,), market, marks)[0]


def revalue_many(accounts: Sequence[HyperliquidAccount], market: HyperliquidMarket,
                 marks: PerpMarks) -> list[HyperliquidAccount]:
    """:func:`revalue` of many accounts, their figures recomputed over one stacked book."""
    held = [a for a in accounts if a.positions]
    snap = HyperliquidSnapshot(market=market, accounts=tuple(held), observed_at_ms=0, observed_at_source="local_clock")
    figs = [HyperliquidFigures(**snap.health_inputs(a)) for a in held]
    marks_of = [[float(marks.price(p.coin) or p.mark_px) for p in a.positions] for a in held]
    reports = iter(hyperliquid_reported_at_many(figs, marks_of))
    return [_revalued(a, next(reports)) if a.positions else a for a in accounts]


def _revalued(account: HyperliquidAccount, rep: HyperliquidReport) -> HyperliquidAccount:
    positions = []
    for i, p in enumerate(account.positions):
        liq = float(rep.liquidation_px[i])
        positions.append(p.model_copy(update={
            "position_value_usd": _usd(rep.position_value_usd[i]),
            "unrealized_pnl_usd": _usd(rep.unrealized_pnl_usd[i]),
            "liquidation_px": Decimal(repr(liq)).quantize(_PX) if np.isfinite(liq) and liq > 0 else None,
            "margin_used_usd": p.margin_used_usd if p.is_cross else _usd(rep.margin_used_usd[i]),
        }))
    cross = account.cross_margin_summary
    ntl = sum((positions[i].position_value_usd for i, p in enumerate(account.positions) if p.is_cross), Decimal(0))
    return account.model_copy(update={
        "positions": tuple(positions),
        "cross_margin_summary": cross.model_copy(update={"account_value_usd": _usd(rep.cross_account_value_usd),
                                                         "total_ntl_pos_usd": ntl}),
        "cross_maintenance_margin_used_usd": _usd(rep.cross_maintenance_usd),
    })


def evaluate(pairs: Sequence[tuple[str, Any]], marks: PerpMarks, venue: str, block: BlockRef) -> VenueReading:
    """The cached accounts revalued at the block's marks, evaluated as a fresh read is (:func:`sync.evaluate`)."""
    market = marks.market
    if not isinstance(market, HyperliquidMarket):
        raise TypeError("hyperliquid marks without their market")
    accounts = tuple(revalue_many([state for _, state in pairs], market, marks))
    times = [(marks.observed_at_ms, market.observed_at_source)] + [
        (a.observed_at_ms, a.observed_at_source) for a in accounts]
    observed, source = snapshot_time(times)
    return sync.evaluate(HyperliquidSnapshot(market=market, accounts=accounts, observed_at_ms=observed,
                                             observed_at_source=source), venue, block)
