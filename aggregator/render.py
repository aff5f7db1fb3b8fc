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
    "check_text",
    "has_exposure",
    "health_document",
    "health_style",
    "health_table",
    "venue_summary_table",
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
    """How xmargin's figures compare with the venue's own: exact (Aave), agrees within rounding (perps),
    or no venue figure to compare (–)."""
    if h.matches_onchain is None:
        return Text("–", style="dim")
    if not h.matches_onchain:
        return Text("MISMATCH", style="bold red")
    return Text("exact" if h.kind == "lending" else "agrees", style="green")


def has_exposure(h: VenueHealth) -> bool:
    """Whether the wallet holds anything on the venue (rows of empty venues are left out of summaries)."""
    return bool(h.positions) or h.debt_usd != 0 or h.collateral_usd != 0


def _hf_text(hf: float | None) -> Text:
    return Text("∞ (no debt)" if hf is None else f"{hf:.4f}", style=health_style(hf))


def health_table(doc: dict[str, Any]) -> list[Table]:
    """One table per venue: its health line, then its positions."""
    tables = []
    for v in doc["venues"]:
        title = f"{v['venue']} ({v['kind']}) · block {v['block']} · {v['status']}"
        table = Table(title=title, title_justify="left", expand=False)
        for col in ("asset", "side", "amount", "price (USD)", "value (USD)", "collateral"):
            table.add_column(col, justify="right" if col not in ("asset", "side") else "left")
        for p in v["positions"]:
            table.add_row(p["asset"], p["side"], f"{p['amount']:,.6g}", f"{p['price_usd']:,.2f}",
                          f"{p['value_usd']:,.2f}", "yes" if p["is_collateral"] else "no")
        hf = Text.assemble("health factor ", _hf_text(v["health_factor"]))
        lt = v["liquidation_threshold"]
        if v["kind"] == "perp":
            equity, maintenance = v.get("equity_usd") or 0, v.get("maintenance_margin_usd") or 0
            amounts = f"  equity ${equity:,.2f}  maintenance ${maintenance:,.2f}"
            liq = v.get("liquidation_price") or {}
            amounts += "".join(f"  liq {coin} ${px:,.2f}" for coin, px in liq.items() if px is not None)
        elif v["kind"] == "lp":
            amounts = f"  value ${v['collateral_usd'] or 0:,.2f}"
        else:
            amounts = f"  collateral ${v['collateral_usd'] or 0:,.2f}  debt ${v['debt_usd'] or 0:,.2f}"
        table.caption = Text.assemble(
            hf,
            amounts,
            f"  LT {lt:.2%}" if lt is not None else "",
            ("  matches on-chain" if v["matches_onchain"] else "  DIFFERS FROM ON-CHAIN")
            if v["matches_onchain"] is not None else "",
            f"  flags: {', '.join(v['flags'])}" if v["flags"] else "",
            f"  error: {v['error']}" if v["error"] else "",
        )
        table.caption_justify = "left"
        tables.append(table)
    return tables


def venue_summary_table(healths: Sequence[VenueHealth], labels: dict[str, str], block: int | None) -> Table:
    """One line per wallet and venue: the demo's and ``sync --once``'s view of a sync."""
    table = Table(title=f"health at block {block}" if block is not None else "health", title_justify="left")
    for col in ("wallet", "label", "venue", "health factor", "collateral (USD)", "debt (USD)", "LT", "check"):
        table.add_column(col, justify="left" if col in ("wallet", "label", "venue") else "right")
    for h in filter(has_exposure, healths):
        table.add_row(
            h.wallet[:10] + "…",
            labels.get(h.wallet, ""),
            h.venue,
            _hf_text(h.health_factor),
            f"{h.collateral_usd:,.2f}",
            f"{h.debt_usd:,.2f}",
            f"{h.liquidation_threshold:.2%}" if h.liquidation_threshold is not None else "-",
            check_text(h),
        )
    return table


def cycle_summary(report: CycleReport) -> list[str]:
    """One line per alert fired and per keeper outcome of a ``xmargin run`` cycle (nothing when quiet)."""
    lines: list[str] = []
    if report.alerts is not None:
        for alert, results in report.alerts.deliveries:
            sent = ", ".join(f"{r.sink} {'ok' if r.ok else 'FAILED'}" for r in results) or "no sink"
            lines.append(f"[bold]alert[/] {alert.severity}: {alert.message} ({sent})")
    for outcome in report.keeper:
        if outcome.status == "healthy":
            continue
        plan = f" plan {outcome.plan_id}" if outcome.plan_id is not None else ""
        actions = "; ".join(f"{a.kind} {a.amount:,.6g} on {a.venue}" for a in (outcome.plan.actions if outcome.plan
                                                                                 else ()))
        lines.append(f"[bold]keeper[/] {outcome.wallet}{plan}: {outcome.status}"
                     + (f" — {actions}" if actions else "") + (f" ({outcome.message})" if outcome.message else ""))
    lines += [f"[red]{e}[/]" for e in report.errors]
    return lines
