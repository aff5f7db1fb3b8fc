"""The history response's ``net_worth``: a wallet's net worth over time, from its stored health history — what it
holds on every venue less what it owes.

Per venue and block: the adapter's ``net_worth_usd`` (a lending venue: every supplied asset, collateral or not,
less the debt), else ``collateral_usd - debt_usd`` (a perp
account's equity, an LP range's value). A venue whose read failed at a block counts with its last known value
from an earlier block of the same history, so a failed read is not a crash in net worth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from db.rows import HealthPoint

__all__ = ["net_worth_points", "venue_net_worth_usd"]


def venue_net_worth_usd(point: HealthPoint) -> float | None:
    """One venue's net worth at one block; None when the read failed (no health stored)."""
    h = point.health
    if h is None:
        return None
    value = h.extra.get("net_worth_usd")
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return h.collateral_usd - h.debt_usd


def net_worth_points(points: Iterable[HealthPoint]) -> list[dict[str, Any]]:
    """``[{"block", "block_timestamp", "net_worth_usd"}]``, oldest block first, one per block of ``points``
    (blocks where no venue has been read yet are left out)."""
    by_block: dict[int, list[HealthPoint]] = {}
    for p in points:
        by_block.setdefault(p.block_number, []).append(p)
    known: dict[str, float] = {}
    out: list[dict[str, Any]] = []
    for block in sorted(by_block):
        group = by_block[block]
        for p in group:
            value = venue_net_worth_usd(p)
            if value is not None:
                known[p.venue] = value
        if known:
            out.append({"block": block, "block_timestamp": group[0].block_timestamp.isoformat(),
                        "net_worth_usd": sum(known.values())})
    return out
