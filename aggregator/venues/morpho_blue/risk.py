"""Morpho Blue's lines in the cross-venue risk book: one isolated account per market (collateral, debt, LLTV);
supplying to a market is a held asset, never liquidated."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aggregator.venues.detail import parse
from aggregator.venues.morpho_blue.detail import MorphoHealthDetail
from aggregator.venues.risk_lines import FactorOf
from db.rows import PositionSide, SnapshotRow
from riskcore.book import AccountSpec, SpotSpec
from riskcore.venues.morpho_blue import market_spec

__all__ = ["RULE_LABEL", "accounts"]

RULE_LABEL = "MORPHO"
"""The venue's liquidation rule, as documents name it (a stress event's ``rule``)."""


def accounts(snap: SnapshotRow, factor: FactorOf) -> list[AccountSpec]:
    """The wallet's Morpho markets, each an isolated account liquidated at its own LLTV."""
    assert snap.health is not None
    out: list[AccountSpec] = []
    by_market: dict[str, dict[str, Any]] = defaultdict(dict)
    for p in snap.positions:
        f = factor(p.asset.symbol, p.price_usd)
        if p.side is PositionSide.SUPPLY:  # lending to the market: held, never liquidated
            out.append(SpotSpec(f, p.amount, venue=snap.venue))
        elif p.market_key is not None and p.side in (PositionSide.COLLATERAL, PositionSide.DEBT):
            by_market[p.market_key][str(p.side)] = (f, p.amount)
    markets = parse(MorphoHealthDetail, snap.health.extra).by_market()
    for market_id, legs in by_market.items():
        coll_f, coll = legs.get("collateral", (None, 0.0))
        loan_f, owed = legs.get("debt", (None, 0.0))
        meta = markets.get(market_id)
        if coll_f is None:
            continue  # debt without collateral cannot be opened on Morpho
        if loan_f is None:  # collateral without debt: still the wallet's exposure, never liquidated
            loan_f = coll_f
        out.append(market_spec(coll_f, coll, loan_f, owed, meta.lltv if meta is not None else 0.0, venue=snap.venue))
    return out
