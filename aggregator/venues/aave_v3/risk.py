"""Aave v3's lines in the cross-venue risk book: one account per wallet, each reserve's threshold and bonus as
the protocol applies them."""

from __future__ import annotations

from collections import defaultdict

from aggregator.venues.risk_lines import FactorOf
from db.rows import PositionSide, SnapshotRow
from riskcore.book import AccountSpec, LendingAccountSpec

__all__ = ["DEFAULT_BONUS", "RULE_LABEL", "accounts"]

RULE_LABEL = "AAVE"
"""The venue's liquidation rule, as documents name it (a stress event's ``rule``)."""

DEFAULT_BONUS = 0.05
"""The liquidation bonus assumed for an account without collateral value to weigh its reserves' bonuses by."""


def accounts(snap: SnapshotRow, factor: FactorOf) -> list[AccountSpec]:
    """The wallet's Aave account: collateral by factor with its liquidation threshold, debt by factor, and the
    collateral-weighted liquidation bonus."""
    collateral: dict[str, tuple[float, float]] = {}
    debt: dict[str, float] = defaultdict(float)
    bonus_num = bonus_den = 0.0
    for p in snap.positions:
        f = factor(p.asset.symbol, p.price_usd)
        if p.side is PositionSide.COLLATERAL:
            lt = float(p.extra.get("liquidation_threshold_bps", 0)) / 1e4 if p.is_collateral else 0.0
            amount, _ = collateral.get(f, (0.0, lt))
            collateral[f] = (amount + p.amount, lt)
            if p.is_collateral and p.value_usd:
                bonus_num += p.value_usd * (float(p.extra.get("liquidation_bonus_bps", 10_000)) / 1e4 - 1)
                bonus_den += p.value_usd
        elif p.side is PositionSide.DEBT:
            debt[f] += p.amount
    bonus = bonus_num / bonus_den if bonus_den else DEFAULT_BONUS
    return [LendingAccountSpec(collateral, dict(debt), bonus=bonus, venue=snap.venue)]
