"""Hyperliquid: from the connector's snapshot to per-wallet margin health, checked against the venue's figures."""

from __future__ import annotations

import math

import numpy as np

from aggregator.venues.hyperliquid.detail import HyperliquidAccountDetail, HyperliquidPerpDetail
from aggregator.venues.perp import finite_or_none, implied_marks, perp_health, perp_position
from aggregator.views import VenueReading
from connectors.hyperliquid.models import HyperliquidSnapshot
from connectors.types import BlockRef
from riskcore.venues.hyperliquid.health import HyperliquidFigures, check_hyperliquid_many, hyperliquid_health_many

__all__ = ["evaluate"]


def evaluate(snapshot: HyperliquidSnapshot, venue: str, block: BlockRef) -> VenueReading:
    """Every wallet's Hyperliquid margin health, checked against the venue's own reported figures."""
    healths = []
    figs = [HyperliquidFigures(**snapshot.health_inputs(account)) for account in snapshot.accounts]
    # every account's rule and check in one stacked book: equal to the one-account functions, without ~1 ms of
    # numpy call overhead per account (tests/riskcore/test_perp_recompute.py)
    checks = check_hyperliquid_many(figs)
    for account, fig, health, check in zip(snapshot.accounts, figs, hyperliquid_health_many(figs), checks,
                                           strict=True):
        liq = dict(zip(health.position_labels, health.liquidation_px, strict=True))
        marks = implied_marks(fig.szi, fig.position_value_usd)
        equity = float(np.sum(health.equity_usd))
        positions = [
            perp_position(venue, p.coin, p.szi, float(p.mark_px), HyperliquidPerpDetail(
                entry_px=str(p.entry_px), leverage=p.leverage.value, cross=p.is_cross,
                unrealized_pnl_usd=str(p.unrealized_pnl_usd), margin_used_usd=str(p.margin_used_usd),
                venue_liquidation_px=str(p.liquidation_px) if p.liquidation_px is not None else None,
                liquidation_px=finite_or_none(float(liq.get(p.coin, math.nan))),
                # What the margin rule ran on (a what-if reruns it at another mark): the exact size, the mark
                # implied by the reported position value, the tier table, an isolated position's own cash.
                szi=str(p.szi), mark_usd=marks[i],
                tier_lower_usd=[float(x) for x in fig.tier_lower_usd[i] if math.isfinite(x)],
                tier_max_leverage=[float(x) for x in fig.tier_max_leverage[i] if math.isfinite(x)],
                isolated_raw_usd=None if p.is_cross else float(fig.isolated_raw_usd[i]),
            ), equity)
            for i, p in enumerate(account.positions)
        ]
        healths.append(perp_health(account.wallet, venue, health, check, positions,
                               HyperliquidAccountDetail(cross_raw_usd=fig.cross_raw_usd)))
    return VenueReading(venue=venue, kind="perp", block=block, healths=tuple(healths),
                        venue_time_ms=snapshot.observed_at_ms)
