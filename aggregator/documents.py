"""The documents every view shows — the CLI, the API and the dashboard read the same ones: a wallet's health and
risk with the chain they came from, how fresh they are, and the headline a trader came for.

Freshness. Every reading carries its age: ``synced_at`` (when the sync that read it finished) and ``age_s`` (now −
``synced_at``), beside the block's own time. A reading is *stale* when the newest sync of its chain failed, when its
venue's newest read failed (the last good values are shown, with the failure), or when it is older than the bound
(``Settings.stale_bound_s``, default 3 × the sync interval). The ``freshness`` object says so with the reason and
since when; every view leads with it when stale.

Headline. ``summary`` is one line: the lowest venue health, the unified health, and the first liquidation — the venue
and the single price move nearest today's prices that liquidates it (``first_liquidation.nearest`` of the risk
document, or the nearest of its liquidation prices). Venues are listed riskiest first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aggregator.render import ago, health_document
from db import ChainSyncStatus, LatestVenueHealth, RiskRow, Store, SyncStatus

__all__ = [
    "UNIFIED_HEALTH_MEANING",
    "confirmed_at",
    "freshness",
    "health_view",
    "risk_view",
    "service_status",
    "summary",
]

UNIFIED_HEALTH_MEANING = (
    "Unified health is the wallet's equity over the worst loss it could take across all its venues in the stress "
    "scenarios, with each venue's own liquidation rule applied inside every scenario; below 1, some scenario wipes "
    "the equity out."
)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat()


def _clock(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def confirmed_at(item: LatestVenueHealth, statuses: Sequence[ChainSyncStatus]) -> datetime:
    """When the values of ``item`` were last confirmed: its snapshot's time, or the newest good sync of its chain
    when that sync read the same block or a later one and this venue did not fail (a sync of a block already
    stored writes nothing new, yet confirms what is stored)."""
    taken = item.snapshot.taken_at
    status = next((s for s in statuses if s.chain.id == item.chain_ref_id), None)
    if (item.failed is None and status is not None and status.last_ok_at is not None
            and status.last_ok_block is not None and status.last_ok_block >= item.snapshot.block_number
            and str(item.snapshot.status) == "ok"):
        return max(taken, status.last_ok_at)
    return taken


def freshness(
    latest: Sequence[LatestVenueHealth], statuses: Sequence[ChainSyncStatus], stale_after_s: float, now: datetime,
) -> dict[str, Any]:
    """The wallet's ``freshness`` object (see the module docstring) from its newest snapshots and its chains' sync
    status. The wallet is as fresh as its oldest venue reading."""
    synced = [confirmed_at(item, statuses) for item in latest]
    blocks = [item.snapshot.block_timestamp for item in latest]
    synced_at = min(synced) if synced else None
    refs = {item.chain_ref_id for item in latest}
    mine = [s for s in statuses if s.chain.id in refs] if latest else list(statuses)
    reasons: list[str] = []
    failing = [s for s in mine if s.last_attempt_status is SyncStatus.FAILED]
    for s in failing:
        since = s.failing_since or s.last_attempt_at
        where = f"{s.chain.name or s.chain.chain_id}: " if len(mine) > 1 else ""
        reasons.append(f"{where}sync failing since {_clock(since)} ({ago((now - since).total_seconds())} ago): "
                       f"{s.last_error}" if since is not None else f"{where}sync failing: {s.last_error}")
    failing_since = min((s.failing_since for s in failing if s.failing_since is not None), default=None)
    status = failing[0] if failing else (mine[0] if mine else None)
    failed = [item for item in latest if item.failed is not None]
    for item in failed:
        assert item.failed is not None
        reasons.append(f"{item.venue}'s newest read (block {item.failed.block_number}) failed: {item.failed.error}; "
                       f"showing block {item.snapshot.block_number}'s values")
    age = (now - synced_at).total_seconds() if synced_at is not None else None
    if age is not None and age > stale_after_s:
        reasons.append(f"no successful sync for {ago(age)} (data older than {ago(stale_after_s)} is stale)")
    if not latest and status is None:
        reasons.append("never synced")
    last = None
    if status is not None and status.last_attempt_status is not None:
        last = {"status": str(status.last_attempt_status), "at": _iso(status.last_attempt_at),
                "error": status.last_error if status.last_attempt_status is SyncStatus.FAILED else None}
    return {
        "synced_at": _iso(synced_at),
        "age_s": round(age, 3) if age is not None else None,
        "block_timestamp": _iso(max(blocks)) if blocks else None,
        "block_age_s": round((now - max(blocks)).total_seconds(), 3) if blocks else None,
        "stale": bool(reasons),
        "stale_after_s": stale_after_s,
        "last_sync": last,
        "failing_since": _iso(failing_since),
        "reason": "; ".join(reasons) or None,
    }


def _hf(venue: Mapping[str, Any]) -> float | None:
    hf = venue.get("health_factor")
    return float(hf) if isinstance(hf, int | float) and math.isfinite(hf) else None


def _risk_rank(venue: Mapping[str, Any]) -> tuple[int, float, str]:
    """Riskiest first: venues without a reading (an error), then by health factor, then no-debt venues, LPs last."""
    hf = _hf(venue)
    if venue.get("status") == "error":
        return (0, 0.0, venue["venue"])
    if hf is not None:
        return (1, hf, venue["venue"])
    return (2 if venue.get("kind") != "lp" else 3, 0.0, venue["venue"])


def _nearest(risk: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The first liquidation: the nearer of the nearest single-price move (the risk document's
    ``first_liquidation.nearest``, else the nearest of its liquidation prices) and the common move of every risky
    price (``first_liquidation.down`` / ``up``) — a single move far out (DAI at $3.48) is not what liquidates a
    book that a 58 % fall of every risky asset liquidates first."""
    if not risk:
        return None
    fl = risk.get("first_liquidation") or {}
    candidates: list[dict[str, Any]] = []
    nearest = fl.get("nearest") if isinstance(fl, Mapping) else None
    if isinstance(nearest, Mapping) and isinstance(nearest.get("move"), int | float):
        candidates.append(dict(nearest))
    else:
        for row in risk.get("liquidation_prices") or ():
            price, now_px = row.get("price_usd"), row.get("current_price_usd")
            if not isinstance(price, int | float) or not isinstance(now_px, int | float) or now_px <= 0:
                continue
            candidates.append({"venue": row.get("venue"), "asset": row.get("asset"),
                               "direction": "falls" if row.get("side") == "below" else "rises",
                               "price_usd": float(price), "current_price_usd": float(now_px),
                               "move": price / now_px - 1})
    for side, sign, word in (("down", -1.0, "falls"), ("up", 1.0, "rises")):
        leg = fl.get(side) if isinstance(fl, Mapping) else None
        if not isinstance(leg, Mapping):
            continue
        move, risky = leg.get("move"), list(fl.get("moves") or ())  # the underlyings the engine moved together
        if isinstance(move, int | float) and move > 0 and risky:
            names = risky[0] if len(risky) == 1 else (", ".join(risky[:-1]) + " and " + risky[-1]
                                                        if len(risky) <= 4 else "every risky asset")
            verb = word if len(risky) == 1 else f"all {word[:-1]}"
            candidates.append({"venue": leg.get("venue"), "asset": names, "direction": word, "price_usd": None,
                               "current_price_usd": None, "move": sign * float(move), "common_move": True,
                               "phrase": f"{names} {verb} {float(move):.1%}"})
    for c in candidates:
        if "phrase" not in c:
            c["phrase"] = f"{c['asset']} {c['direction']} to {_money(c['price_usd'])} ({c['move']:+.1%})"
    candidates = [c for c in candidates if c.get("venue")]
    return min(candidates, key=lambda c: abs(c["move"])) if candidates else None


def _money(x: float) -> str:
    if x >= 100:
        return f"${x:,.2f}"
    if x >= 0.01:
        return f"${x:,.4f}"
    return f"${x:.4g}"


def summary(venues: Sequence[Mapping[str, Any]], risk: Mapping[str, Any] | None,
            fresh: Mapping[str, Any] | None) -> dict[str, Any]:
    """The headline: lowest venue health, unified health (``risk_block``: the block of the risk result it comes
    from, ``None`` without one), first liquidation, and the line that says them."""
    rated = [(hf, v["venue"]) for v in venues if (hf := _hf(v)) is not None]
    lowest = min(rated) if rated else None
    uh = risk.get("unified_health") if risk else None
    first = _nearest(risk)
    parts = [f"lowest health {lowest[1]} {lowest[0]:.4f}" if lowest else "no venue with debt"]
    if risk is not None:
        parts.append(f"unified {'∞' if uh is None else f'{uh:.2f}'}")
    if first is not None:
        parts.append(f"first liquidation: {first['venue']} if {first['phrase']}")
    elif risk is not None:
        parts.append("no liquidation within reach of any single price")
    text = " · ".join(parts)
    if fresh and fresh.get("stale"):
        text = f"STALE — {text} (as of {fresh.get('synced_at') or 'never'}: {fresh.get('reason')})"
    return {
        "lowest_venue": {"venue": lowest[1], "health_factor": lowest[0]} if lowest else None,
        "unified_health": uh,
        "risk_block": risk.get("block") if risk else None,
        "first_liquidation": first,
        "text": text,
        "unified_health_meaning": UNIFIED_HEALTH_MEANING,
    }


def _chain(statuses: Sequence[ChainSyncStatus], chain_ref: int | None) -> dict[str, Any] | None:
    """The ``chain`` object of the identity ``chain_ref`` (its sync status carries it)."""
    chain = next((s.chain for s in statuses if s.chain.id == chain_ref), None)
    if chain is None:
        return None
    return {"name": chain.name, "chain_id": chain.chain_id, "genesis_hash": chain.genesis_hash,
            "head_hash": chain.last_block_hash, "head_block": chain.last_block}


def _venue_freshness(doc: dict[str, Any], item: LatestVenueHealth, stale_after_s: float, now: datetime,
                     statuses: Sequence[ChainSyncStatus]) -> None:
    synced = confirmed_at(item, statuses)
    age = (now - synced).total_seconds()
    doc["synced_at"] = _iso(synced)
    doc["age_s"] = round(age, 3)
    if item.failed is not None:
        doc["status"] = "stale"
        doc["error"] = item.failed.error
        doc["failed_at"] = _iso(item.failed.taken_at)
        doc["failed_block"] = item.failed.block_number
    doc["stale"] = item.failed is not None or age > stale_after_s or doc.get("status") == "error"


def health_view(store: Store, address: str, *, stale_after_s: float, now: datetime | None = None,
                latest: Sequence[LatestVenueHealth] | None = None, risk: RiskRow | None = None,
                with_risk: bool = True) -> dict[str, Any]:
    """The health document of ``address`` (``xmargin health --json``, ``GET …/health``): every venue's newest
    reading riskiest first, with ``chain``, ``freshness`` and ``summary``. ``venues`` is empty without a snapshot
    on the current chains."""
    now = now or datetime.now(UTC)
    latest = store.latest_health(address) if latest is None else latest
    venues = store.list_venues()
    doc = health_document(address, latest, {v.name: str(v.kind) for v in venues})
    statuses = store.sync_status({v.chain_id for v in venues if v.chain_id is not None} or None)
    for venue, item in zip(doc["venues"], latest, strict=True):
        _venue_freshness(venue, item, stale_after_s, now, statuses)
    doc["venues"].sort(key=_risk_rank)
    fresh = freshness(latest, statuses, stale_after_s, now)
    if risk is None and with_risk and latest:
        risk = store.latest_risk(address)
    doc["chain"] = _chain(statuses, latest[0].chain_ref_id if latest else None)
    doc["freshness"] = fresh
    doc["summary"] = summary(doc["venues"], dict(risk.document) if risk is not None else None, fresh)
    return doc


def risk_view(
    store: Store, address: str, *, stale_after_s: float, now: datetime | None = None,
) -> dict[str, Any] | None:
    """The newest stored risk document of ``address`` with ``computed_at``, ``chain``, ``freshness`` and
    ``summary`` (``None`` without one on the current chains)."""
    now = now or datetime.now(UTC)
    risk = store.latest_risk(address)
    if risk is None:
        return None
    health = health_view(store, address, stale_after_s=stale_after_s, now=now, risk=risk)
    return {**risk.document, "wallet": health["wallet"], "computed_at": _iso(risk.computed_at),
            "chain": health["chain"], "freshness": health["freshness"], "summary": health["summary"]}


def service_status(store: Store, *, stale_after_s: float, chain_ids: set[int] | None = None,
                   now: datetime | None = None) -> dict[str, Any]:
    """``/healthz``: ``ok``, or ``degraded`` with the reasons — a chain whose newest sync failed, or whose newest
    good sync is older than the bound."""
    now = now or datetime.now(UTC)
    chains: list[dict[str, Any]] = []
    reasons: list[str] = []
    for s in store.sync_status(chain_ids):
        name = s.chain.name or f"chain {s.chain.chain_id}"
        stale = False
        if s.last_attempt_status is SyncStatus.FAILED:
            since = s.failing_since or s.last_attempt_at
            reasons.append(f"{name}: sync failing since {_clock(since) if since else '?'}: {s.last_error}")
            stale = True
        elif s.last_ok_at is not None and (now - s.last_ok_at).total_seconds() > stale_after_s:
            reasons.append(f"{name}: no successful sync for {ago((now - s.last_ok_at).total_seconds())}")
            stale = True
        chains.append({"name": s.chain.name, "chain_id": s.chain.chain_id, "stale": stale,
                       "last_ok_at": _iso(s.last_ok_at), "last_ok_block": s.last_ok_block,
                       "last_sync": {"status": str(s.last_attempt_status) if s.last_attempt_status else None,
                                     "at": _iso(s.last_attempt_at), "error": s.last_error},
                       "failing_since": _iso(s.failing_since)})
    return {"status": "degraded" if reasons else "ok", "reasons": reasons, "chains": chains,
            "stale_after_s": stale_after_s}
