"""Turn stored health into the JSON document and the rich tables the CLI prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from aggregator.views import VenueHealth
from db.rows import LatestVenueHealth

if TYPE_CHECKING:
    from aggregator.cycle import CycleReport

__all__ = [
    "ago",
    "check_text",
    "has_exposure",
    "health_document",
    "health_style",
    "health_table",
    "short_hex",
    "venue_summary_table",
    "wallet_header",
]


PERP_FIELDS = ("maintenance_margin_usd", "equity_usd", "liquidation_price")
"""Per-venue fields of a perp venue in the health document."""


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def health_document(wallet: str, latest: Sequence[LatestVenueHealth], kinds: dict[str, str]) -> dict[str, Any]:
    """The ``xmargin health --json`` document for one wallet (newest snapshot of each venue)."""
    venues: list[dict[str, Any]] = []
    chain_id = block = None
    for item in latest:
        snap = item.snapshot
        chain_id = snap.chain_id if chain_id is None else chain_id
        block = snap.block_number if block is None else max(block, snap.block_number)
        h = snap.health
        prices = {p.asset.address: p for p in item.prices}
        venues.append({
            "venue": item.venue,
            "kind": kinds.get(item.venue, "lending"),
            "chain_id": snap.chain_id,
            "block": snap.block_number,
            "block_timestamp": snap.block_timestamp.isoformat(),
            "status": str(snap.status),
            "error": snap.error,
            "health_factor": _finite(h.health_factor) if h else None,
            "health_factor_raw": str(h.health_factor_raw) if h and h.health_factor_raw is not None else None,
            "onchain_health_factor_raw": (
                str(h.onchain_health_factor_raw) if h and h.onchain_health_factor_raw is not None else None
            ),
            "matches_onchain": h.matches_onchain if h else None,
            "collateral_usd": h.collateral_usd if h else None,
            "debt_usd": h.debt_usd if h else None,
            "liquidation_threshold": h.liquidation_threshold if h else None,
            "flags": list(h.flags) if h else [],
            **({k: h.extra.get(k) for k in PERP_FIELDS} if kinds.get(item.venue) == "perp" and h else {}),
            "venue_timestamp": snap.venue_timestamp.isoformat() if snap.venue_timestamp else None,
            "positions": [
                {
                    "asset": p.asset.symbol,
                    "asset_address": p.asset.address,
                    "side": str(p.side),
                    "amount": p.amount,
                    "amount_raw": str(p.amount_raw),
                    "price_usd": p.price_usd,
                    "value_usd": p.value_usd,
                    "is_collateral": p.is_collateral,
                    "price_source": prices[p.asset.address].source if p.asset.address in prices else None,
                    "price_age_s": prices[p.asset.address].age_s if p.asset.address in prices else None,
                    **({"detail": dict(p.extra)} if p.extra else {}),
                }
                for p in snap.positions
            ],
        })
    return {"wallet": wallet, "chain_id": chain_id, "block": block, "venues": venues}


def health_style(hf: float | None) -> str:
    """Colour of a health factor: green when safe, yellow under 1.25, red under 1.05."""
    if hf is None:
        return "green"
    if hf < 1.05:
        return "bold red"
    if hf < 1.25:
        return "yellow"
    return "green"


def check_text(h: VenueHealth) -> Text:
    """How xmargin's figures compare with the venue's own: exact (to the unit), agrees within rounding (perps),
    recomputed (block mode: computed from the wallet's cached state in the protocol's own math at a block that did
    not read it, so there is no venue figure of that block to compare), or no venue figure to compare (–)."""
    if h.matches_onchain is None:
        if h.extra.get("source") == "recomputed":
            return Text("recomputed", style="dim")
        return Text("–", style="dim")
    if not h.matches_onchain:
        return Text("MISMATCH", style="bold red")
    return Text("exact" if h.kind == "lending" else "agrees", style="green")


def has_exposure(h: VenueHealth) -> bool:
    """Whether the wallet holds anything on the venue (rows of empty venues are left out of summaries)."""
    return bool(h.positions) or h.debt_usd != 0 or h.collateral_usd != 0


def _hf_text(hf: float | None) -> Text:
    return Text("∞ (no debt)" if hf is None else f"{hf:.4f}", style=health_style(hf))


def short_hex(value: str) -> str:
    """An address or hash shortened for tables and lines: ``0x4b27…22B8`` (values of 12 characters or fewer
    unchanged). The one shortener of every view."""
    return f"{value[:6]}…{value[-4:]}" if len(value) > 12 else value


def ago(seconds: float | None) -> str:
    """An age in words — ``12 s``, ``4 min``, ``3 h 5 min``, ``2 d 4 h``; ``never`` for ``None`` — the one every
    view prints."""
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    if s < 90:
        return f"{s} s"
    if s < 3_600:
        return f"{round(s / 60)} min"
    if s < 86_400:
        h, m = divmod(round(s / 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(round(s / 3_600), 24)
    return f"{d} d {h} h" if h else f"{d} d"


def _usd(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.2f}" if abs(x) < 1e9 else f"{x:,.3g}"


def _amount(x: float) -> str:
    return f"{x:,.6g}" if abs(x) < 1e15 else f"{x:.4g}"


def wallet_header(doc: dict[str, Any], label: str | None = None) -> list[Text]:
    """The lines a wallet's view opens with: who, which chain and block, how fresh — STALE in red with why — and
    the headline (lowest venue health, unified health, first liquidation)."""
    fresh = doc.get("freshness") or {}
    chain = doc.get("chain") or {}
    who = Text.assemble((short_hex(doc["wallet"]), "bold"), f" ({label})" if label else "")
    where = f" · {chain.get('name') or 'chain'} {doc.get('chain_id')}" if doc.get("chain_id") is not None else ""
    block = f" · block {doc['block']}" if doc.get("block") is not None else ""
    line = Text.assemble(who, where, block)
    if fresh.get("synced_at"):
        line.append(f" · synced {ago(fresh.get('age_s'))} ago", style="red" if fresh.get("stale") else "dim")
    lines = [line]
    if fresh.get("stale"):
        lines.append(Text.assemble(("STALE", "bold red"), " ", (str(fresh.get("reason") or ""), "red")))
    summary = doc.get("summary") or {}
    if summary:
        lowest = summary.get("lowest_venue")
        head = Text()
        if lowest:
            head.append("lowest ")
            head.append(f"{lowest['venue']} ")
            head.append(f"{lowest['health_factor']:.4f}", style=health_style(lowest["health_factor"]))
        else:
            head.append("no venue with debt", style="green")
        uh = summary.get("unified_health")
        if summary.get("risk_block") is not None:
            head.append(" · unified ")
            head.append("∞" if uh is None else f"{uh:.2f}", style=health_style(uh))
        first = summary.get("first_liquidation")
        if first:
            head.append(" · first liquidation: ")
            head.append(f"{first['venue']} if {first.get('phrase') or first['asset']}", style="bold")
        lines.append(head)
    return lines


def _position_note(p: dict[str, Any]) -> str:
    """What a trader expects beside a position: LP range and fees, perp entry / leverage / P&L / liquidation,
    lending room (from the position's detail)."""
    d = p.get("detail") or {}
    notes: list[str] = []
    if p["side"] == "lp":
        if "price_lower" in d and "price_upper" in d:
            notes.append(f"range {d['price_lower']:,.6g}–{d['price_upper']:,.6g}")
        if "in_range" in d:
            notes.append("in range" if d["in_range"] else "OUT OF RANGE")
        fees = d.get("fees_owed", d.get("fees"))
        if isinstance(fees, int | float) and fees:
            notes.append(f"fees {fees:,.6g}")
    elif p["side"] == "perp":
        for key, label in (("entry_px", "entry"), ("entry_price", "entry")):
            if d.get(key) is not None:
                notes.append(f"{label} ${float(d[key]):,.2f}")
                break
        if d.get("leverage") is not None:
            notes.append(f"{d['leverage']}×")
        pnl = d.get("unrealized_pnl_usd")
        if pnl is not None:
            notes.append(f"uPnL ${float(pnl):,.2f}")
        liq = d.get("liquidation_px", d.get("liquidation_price"))
        if liq is not None:
            notes.append(f"liq ${float(liq):,.2f}")
    else:
        if d.get("max_withdraw_amount") is not None:
            notes.append(f"max withdraw {_amount(float(d['max_withdraw_amount']))}")
    return " · ".join(notes)


def health_table(doc: dict[str, Any], *, wide: bool = False) -> list[Text | Table]:
    """Per venue, riskiest first: a title line, a table of its positions, its health line and what a trader
    expects beside the positions (LP range and fees, perp entry / leverage / P&L / liquidation). Lines are printed
    at the console's width (not the table's), tables fit 80 columns; ``wide`` adds the price and collateral columns.
    """
    out: list[Text | Table] = []
    for v in doc["venues"]:
        status = v["status"]
        title = Text.assemble((v["venue"], "bold"), f" ({v['kind']}) · block {v['block']}")
        if v.get("age_s") is not None:
            title.append(f" · {ago(v['age_s'])} ago", style="red" if v.get("stale") else "dim")
        if status != "ok":
            title.append(f" · {status.upper()}", style="bold red")
        table = Table(expand=False)
        cols = ["asset", "side", "amount", "value (USD)"] + (["price (USD)", "collateral"] if wide else [])
        for col in cols:
            table.add_column(col, justify="left" if col in ("asset", "side") else "right", overflow="fold")
        notes: list[str] = []
        for p in v["positions"]:
            row = [p["asset"], p["side"], _amount(p["amount"]), _usd(p["value_usd"])]
            if wide:
                row += [_usd(p["price_usd"]), "yes" if p["is_collateral"] else "no"]
            table.add_row(*row)
            note = _position_note(p)
            if note and f"{p['asset']}: {note}" not in notes:
                notes.append(f"{p['asset']}: {note}")
        hf = (Text("never liquidated", style="dim") if v["kind"] == "lp"
              else Text.assemble("health factor ", _hf_text(v["health_factor"])))
        lt = v["liquidation_threshold"]
        if v["kind"] == "perp":
            equity, maintenance = v.get("equity_usd") or 0, v.get("maintenance_margin_usd") or 0
            amounts = f" · equity ${equity:,.2f} · maintenance ${maintenance:,.2f}"
        elif v["kind"] == "lp":
            amounts = f" · value ${v['collateral_usd'] or 0:,.2f}"
        else:
            amounts = f" · collateral ${v['collateral_usd'] or 0:,.2f} · debt ${v['debt_usd'] or 0:,.2f}"
        line = Text.assemble(
            hf,
            amounts,
            f" · LT {lt:.2%}" if lt is not None else "",
            (" · matches on-chain" if v["matches_onchain"] else (" · DIFFERS FROM ON-CHAIN", "bold red"))
            if v["matches_onchain"] is not None else "",
        )
        out += [title, table, line]
        if v["flags"]:
            out.append(Text(f"flags: {', '.join(v['flags'])}", style="yellow"))
        if v["error"]:
            out.append(Text(f"newest read failed: {v['error']}" if status == "stale" else f"error: {v['error']}",
                            style="red"))
        out += [Text(n, style="dim") for n in notes]
    return out


def venue_summary_table(healths: Sequence[VenueHealth], labels: dict[str, str], block: int | None) -> Table:
    """One line per wallet and venue: ``sync --once``'s view of a sync (fits 80 columns: addresses shortened)."""
    table = Table(title=f"health at block {block}" if block is not None else "health", title_justify="left")
    for col in ("wallet", "venue", "health", "coll. USD", "debt USD", "check"):
        table.add_column(col, justify="left" if col in ("wallet", "venue") else "right", overflow="fold")
    rows = sorted(filter(has_exposure, healths), key=lambda h: (h.health_factor is None, h.health_factor or 0.0))
    for h in rows:
        label = labels.get(h.wallet, "")
        table.add_row(
            f"{label} {short_hex(h.wallet)}".strip() if len(label) <= 12 else short_hex(h.wallet),
            h.venue,
            _hf_text(h.health_factor) if h.kind != "lp" else Text("– (LP)", style="dim"),
            f"{h.collateral_usd:,.0f}",
            f"{h.debt_usd:,.0f}",
            check_text(h),
        )
    if not rows:
        table.caption = "no wallet holds a position on any venue"
    return table


def cycle_summary(report: CycleReport) -> list[str]:
    """One line per alert fired and per keeper outcome of a ``xmargin run`` cycle (nothing when quiet)."""
    lines: list[str] = []
    if report.alerts is not None:
        for alert, results in report.alerts.deliveries:
            sent = ", ".join(f"{r.sink} {'ok' if r.ok else 'FAILED'}" for r in results) or "no sink"
            lines.append(f"[bold]alert[/] {alert.severity}: {alert.message} ({sent})")
    for outcome in report.keeper:
        if outcome.status == "healthy" or outcome.repeated:  # a standing plan or error is said once
            continue
        plan = f" plan {outcome.plan_id}" if outcome.plan_id is not None else ""
        actions = "; ".join(f"{a.kind} {a.amount:,.6g} {outcome.symbols.get(a.token, short_hex(a.token))} on {a.venue}"
                            for a in (outcome.plan.actions if outcome.plan else ()))
        lines.append(f"[bold]keeper[/] {short_hex(outcome.wallet)}{plan}: {outcome.status}"
                     + (f" — {actions}" if actions else "") + (f" ({outcome.message})" if outcome.message else ""))
    lines += [f"[red]{e}[/]" for e in report.errors]
    return lines
