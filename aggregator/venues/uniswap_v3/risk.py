"""Uniswap v3's lines in the cross-venue risk book: one concentrated-liquidity range per position NFT."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aggregator.venues.detail import parse
from aggregator.venues.risk_lines import FactorOf
from aggregator.venues.uniswap_v3.detail import UniswapLegDetail
from db.rows import PositionSide, SnapshotRow
from riskcore.book import AccountSpec, LpSpec

__all__ = ["RULE_LABEL", "TICK_BASE", "accounts"]

RULE_LABEL = "NONE"
"""Ranges are never liquidated (a stress event never names this venue)."""

TICK_BASE = 1.0001
"""A tick's price step: the raw price at tick ``t`` is ``1.0001 ** t``."""


def accounts(snap: SnapshotRow, factor: FactorOf) -> list[AccountSpec]:
    """Each position NFT (its two token legs) as a range of human liquidity between its ticks' prices."""
    out: list[AccountSpec] = []
    legs_by_nft: dict[str, list[tuple[Any, UniswapLegDetail]]] = defaultdict(list)
    for p in snap.positions:
        if p.side is PositionSide.LP:
            detail = parse(UniswapLegDetail, p.extra)
            legs_by_nft[str(detail.token_id)].append((p, detail))
    for nft_legs in legs_by_nft.values():
        if len(nft_legs) != 2:
            continue
        (t0, leg), (t1, _) = nft_legs
        f0, f1 = factor(t0.asset.symbol, t0.price_usd), factor(t1.asset.symbol, t1.price_usd)
        d0, d1 = t0.asset.decimals, t1.asset.decimals
        liquidity = leg.liquidity / 10 ** ((d0 + d1) / 2)
        lo = TICK_BASE ** leg.tick_lower * 10 ** (d0 - d1)
        hi = TICK_BASE ** leg.tick_upper * 10 ** (d0 - d1)
        out.append(LpSpec(f0, f1, liquidity, lo, hi, venue=snap.venue))
    return out
