"""Aave v3's lines in the cross-venue risk book: one account per wallet, each reserve's threshold and bonus as
the protocol applies them."""

from __future__ import annotations

from collections import defaultdict

from aggregator.venues.aave_v3.detail import AavePositionDetail
from aggregator.venues.detail import parse
from aggregator.venues.risk_lines import FactorOf
from db.rows import PositionSide, SnapshotRow
from riskcore.book import AccountSpec
from riskcore.venues.aave_v3 import DEFAULT_BONUS, account_spec

__all__ = ["DEFAULT_BONUS", "RULE_LABEL", "accounts"]

RULE_LABEL = "AAVE"
"""The venue's liquidation rule, as documents name it (a stress event's ``rule``)."""


def accounts(snap: SnapshotRow, factor: FactorOf) -> list[AccountSpec]:
    """The wallet's Aave account: collateral by factor with its liquidation threshold, debt by factor, and the
    collateral-weighted liquidation bonus."""
    collateral: dict[str, tuple[float, float]] = {}
    debt: dict[str, float] = defaultdict(float)
    bonus_num = bonus_den = 0.0
    for p in snap.positions:
        f = factor(p.asset.symbol, p.price_usd)
        if p.side is PositionSide.COLLATERAL:
            detail = parse(AavePositionDetail, p.extra)
            lt = float(detail.liquidation_threshold_bps or 0) / 1e4 if p.is_collateral else 0.0
            amount, _ = collateral.get(f, (0.0, lt))
            collateral[f] = (amount + p.amount, lt)
            if p.is_collateral and p.value_usd:
                bonus_bps = detail.liquidation_bonus_bps if detail.liquidation_bonus_bps is not None else 10_000
                bonus_num += p.value_usd * (float(bonus_bps) / 1e4 - 1)
                bonus_den += p.value_usd
        elif p.side is PositionSide.DEBT:
            debt[f] += p.amount
    bonus = bonus_num / bonus_den if bonus_den else DEFAULT_BONUS
    return [account_spec(collateral, dict(debt), bonus=bonus, venue=snap.venue)]
