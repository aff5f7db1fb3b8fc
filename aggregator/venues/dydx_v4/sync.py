"""dYdX v4: from the indexer's snapshot to per-wallet subaccount health, checked against the indexer's figures."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from aggregator.venues.dydx_v4.detail import DydxAccountDetail, DydxPerpDetail
from aggregator.venues.perp import finite_or_none, perp_health, perp_position
from aggregator.views import VenueReading
from connectors.dydx_v4.models import DydxSnapshot
from connectors.types import BlockRef
from riskcore.venues.dydx_v4.health import DydxFigures, check_dydx, dydx_health_many

__all__ = ["evaluate"]


def evaluate(
    snapshot: DydxSnapshot, venue: str, block: BlockRef, wallets_by_account: Mapping[str, str]
) -> VenueReading:
    """Every mapped wallet's dYdX subaccount health, checked against the indexer's equity and free collateral.

    ``wallets_by_account`` maps ``dydx1…`` addresses back to the EVM wallets xmargin tracks.
    """
    healths = []
    figs = [DydxFigures(**snapshot.health_inputs(sub)) for sub in snapshot.accounts]
    # every subaccount's rule in one stacked book (equal to dydx_health, without its per-call numpy overhead)
    for sub, fig, health in zip(snapshot.accounts, figs, dydx_health_many(figs), strict=True):
        liq = dict(zip(health.position_labels, health.liquidation_px, strict=True))
        equity = float(np.sum(health.equity_usd))
        positions = [
            perp_position(venue, p.market, p.size if p.side == "LONG" else -abs(p.size),
                      float(oracle), DydxPerpDetail(
                          entry_px=str(p.entry_price_usd), side=p.side,
                          unrealized_pnl_usd=str(p.unrealized_pnl_usd), account=sub.account_id,
                          liquidation_px=finite_or_none(float(liq.get(p.market, math.nan))),
                          # What the margin rule ran on (a what-if reruns it at another oracle price).
                          size=float(fig.size[i]), mark_usd=float(oracle),
                          maintenance_margin_fraction=float(fig.maintenance_margin_fraction[i]),
                          initial_margin_fraction=float(fig.initial_margin_fraction[i]),
                      ), equity)
            for i, (p, oracle) in enumerate(zip(sub.positions, fig.oracle_usd, strict=True))
        ]
        wallet = wallets_by_account.get(sub.address, sub.address)
        healths.append(perp_health(wallet, venue, health, check_dydx(fig), positions,
                                   DydxAccountDetail(usdc_usd=fig.usdc_usd)))
    return VenueReading(venue=venue, kind="perp", block=block, healths=tuple(healths),
                        venue_time_ms=snapshot.observed_at_ms)
