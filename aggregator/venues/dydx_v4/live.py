"""dYdX v4 kept live: oracle prices from one ``/v4/perpetualMarkets`` per block, subaccounts from the
``v4_subaccounts`` stream and budgeted polls, each revalued at the block's prices by the indexer's rule
(:func:`riskcore.venues.dydx_v4.recompute.dydx_reported_at`) and evaluated as a fresh read would be."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from aggregator.venues.dydx_v4 import sync
from aggregator.views import VenueReading
from connectors.dydx_v4.models import DydxMarkets, DydxSnapshot, DydxSubaccount
from connectors.http import snapshot_time
from connectors.perpcache import PerpMarks
from connectors.types import BlockRef
from riskcore.venues.dydx_v4.health import DydxFigures
from riskcore.venues.dydx_v4.recompute import dydx_reported_at

__all__ = ["evaluate", "revalue"]


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def revalue(sub: DydxSubaccount, markets: DydxMarkets, marks: PerpMarks) -> DydxSubaccount:
    """``sub`` as the indexer would answer at ``marks``: sizes and USDC as cached; ``equity``, ``freeCollateral`` and
    each ``unrealizedPnl`` recomputed (so the oracle implied by the P&L is the block's)."""
    snap = DydxSnapshot(markets=markets, accounts=(sub,), observed_at_ms=0, observed_at_source="local_clock")
    fig = DydxFigures(**snap.health_inputs(sub.account_id))
    oracle = [float(marks.price(p.market) or fig.oracle_usd[i]) for i, p in enumerate(sub.positions)]
    rep = dydx_reported_at(fig, oracle, [float(p.entry_price_usd) for p in sub.positions])
    positions = tuple(
        p.model_copy(update={"unrealized_pnl_usd": p.size * (Decimal(repr(oracle[i])) - p.entry_price_usd)})
        for i, p in enumerate(sub.positions))
    return sub.model_copy(update={"positions": positions, "equity_usd": _dec(rep.equity_usd),
                                  "free_collateral_usd": _dec(rep.free_collateral_usd)})


def evaluate(
    pairs: Sequence[tuple[str, Any]], marks: PerpMarks, venue: str, block: BlockRef,
    wallets_by_account: Mapping[str, str],
) -> VenueReading:
    """The cached subaccounts revalued at the block's oracle prices, evaluated as a fresh read is."""
    markets = marks.market
    if not isinstance(markets, DydxMarkets):
        raise TypeError("dydx marks without their markets")
    accounts = tuple(revalue(state, markets, marks) for _, state in pairs)
    times = [(marks.observed_at_ms, markets.observed_at_source)] + [
        (a.observed_at_ms, a.observed_at_source) for a in accounts]
    observed, source = snapshot_time(times)
    return sync.evaluate(DydxSnapshot(markets=markets, accounts=accounts, observed_at_ms=observed,
                                      observed_at_source=source), venue, block, wallets_by_account)
