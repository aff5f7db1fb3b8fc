"""What every venue's lines in the cross-venue risk book share (``aggregator/venues/<venue>/risk.py``).

A venue's ``risk`` module exports ``accounts(snapshot, factor)``: the wallet's accounts on that venue as the
risk core's account specs (:mod:`riskcore.book`), each carrying the venue's own liquidation rule.
"""

from __future__ import annotations

from typing import Protocol

from aggregator.venues.detail import PerpHealthDetail, parse
from db.rows import PositionSide, SnapshotRow
from riskcore.book import AccountSpec, PerpAccountSpec

__all__ = ["PERP_RULE_LABEL", "FactorOf", "VenueRiskLines", "perp_accounts"]

PERP_RULE_LABEL = "PERP"
"""A perp venue's liquidation rule, in documents."""


class FactorOf(Protocol):
    """The book's underlying for a token symbol the venue reports, noting its USD price (first one wins)."""

    def __call__(self, symbol: str, price_usd: float | None) -> str: ...


class VenueRiskLines(Protocol):
    """A venue's ``risk`` module."""

    RULE_LABEL: str
    """What documents call the venue's liquidation rule (a stress event's ``rule``)."""

    def accounts(self, snap: SnapshotRow, factor: FactorOf) -> list[AccountSpec]: ...


def perp_accounts(snap: SnapshotRow, factor: FactorOf) -> list[AccountSpec]:
    """A perp venue's margin account: cash and signed sizes, at the maintenance rate the venue's requirement
    makes of the notional (the venue's figures, as stored with its health)."""
    assert snap.health is not None
    perps = [p for p in snap.positions if p.side is PositionSide.PERP]
    if not perps:
        return []
    notional = sum(abs(p.amount) * (p.price_usd or 0.0) for p in perps)
    detail = parse(PerpHealthDetail, snap.health.extra)
    maintenance = detail.maintenance_margin_usd
    mmr = maintenance / notional if notional else 0.0
    equity = detail.equity_usd if detail.equity_usd is not None else snap.health.collateral_usd
    sizes = {factor(p.asset.symbol, p.price_usd): (p.amount, mmr) for p in perps}
    cash = equity - sum(p.amount * (p.price_usd or 0.0) for p in perps)
    return [PerpAccountSpec(cash, sizes, venue=snap.venue)]
