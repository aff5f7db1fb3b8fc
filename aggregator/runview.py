"""What ``xmargin run`` prints: the wallets' health once, then per cycle only what changed (with Δ health); when a
sync fails, the failure once — with the reason — and the last known values marked STALE, then one line per cycle
until it recovers. Never an empty table: an empty result says so in words."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from aggregator.cycle import Stage
from aggregator.documents import health_view
from aggregator.render import check_text, cycle_summary, has_exposure, health_style, short_hex
from db import Store

if TYPE_CHECKING:
    from aggregator.cycle import CycleReport

__all__ = ["RunView"]

MIN_CHANGE = 5e-5
"""A health factor that moved less than this is unchanged (four decimals shown)."""


def _hf(hf: float | None, kind: str = "lending") -> Text:
    if kind == "lp":
        return Text("– (LP)", style="dim")
    return Text("∞" if hf is None else f"{hf:.4f}", style=health_style(hf))


def _delta(before: float | None, after: float | None) -> Text:
    if before is None or after is None or not (math.isfinite(before) and math.isfinite(after)):
        return Text("new" if before is None and after is not None else "")
    d = after - before
    if abs(d) < MIN_CHANGE:
        return Text("·", style="dim")
    return Text(f"{d:+.4f}", style="red" if d < 0 else "green")


@dataclass
class _Row:
    wallet: str
    venue: str
    kind: str
    health: float | None
    collateral_usd: float
    debt_usd: float
    check: Text | None = None
    """How the figure compares with the venue's own (exact, agrees, MISMATCH, –); None when not known."""


@dataclass
class RunView:
    """Prints each cycle of ``xmargin run`` to ``console`` (see the module docstring)."""

    console: Console
    store: Store
    stale_after_s: float
    max_rows: int = 40
    max_headlines: int = 10
    last: dict[tuple[str, str], float | None] = field(default_factory=dict)
    failing_since: datetime | None = None
    shown_once: bool = False

    def _name(self, wallet: str, labels: dict[str, str]) -> str:
        label = labels.get(wallet) or ""
        return f"{label} {short_hex(wallet)}".strip() if 0 < len(label) <= 14 else short_hex(wallet)

    def _table(self, title: str, rows: list[_Row], labels: dict[str, str], deltas: bool) -> Table:
        table = Table(title=title, title_justify="left")
        checks = not deltas and any(r.check is not None for r in rows)  # the Δ table stays within 80 columns
        cols = (["wallet", "venue", "health"] + (["Δ"] if deltas else []) + ["coll. USD", "debt USD"]
                + (["check"] if checks else []))
        for col in cols:
            table.add_column(col, justify="left" if col in ("wallet", "venue") else "right", overflow="fold")
        rows = sorted(rows, key=lambda r: (r.health is None, r.health or 0.0))
        for r in rows[: self.max_rows]:
            cells: list[str | Text] = [self._name(r.wallet, labels), r.venue, _hf(r.health, r.kind)]
            if deltas:
                cells.append(_delta(self.last.get((r.wallet, r.venue)), r.health))
            cells += [f"{r.collateral_usd:,.0f}", f"{r.debt_usd:,.0f}"]
            if checks:
                cells.append(r.check or "")
            table.add_row(*cells)
        if len(rows) > self.max_rows:
            table.caption = f"… and {len(rows) - self.max_rows} more (riskiest shown)"
        return table

    def _last_known(self, labels: dict[str, str]) -> list[_Row]:
        kinds = {v.name: str(v.kind) for v in self.store.list_venues()}
        rows: list[_Row] = []
        for wallet in list(labels)[: self.max_rows]:
            for item in self.store.latest_health(wallet):
                h = item.snapshot.health
                if h is None or not (item.snapshot.positions or h.debt_usd or h.collateral_usd):
                    continue
                rows.append(_Row(wallet, item.venue, kinds.get(item.venue, "lending"), h.health_factor,
                                 h.collateral_usd, h.debt_usd))
        return rows

    def show(self, report: CycleReport) -> None:
        """Print one cycle."""
        labels = {w.address: w.label or "" for w in self.store.list_wallets()}
        now = datetime.now(UTC)
        sync = report.sync
        stored = [b for b in sync.batches if b.block is not None and str(b.status) != "failed"]
        errors = [b.error for b in sync.batches if b.error and b not in stored]
        errors += [str(e) for e in report.errors if e.stage is Stage.SYNC]
        if not stored and (errors or not sync.batches):
            why = "; ".join(errors) or "no chain answered"
            if self.failing_since is None:
                self.failing_since = now
                self.console.print(Text.assemble(("sync failed ", "bold red"), f"at {now:%H:%M:%S} UTC: ",
                                                 (why, "red")))
                rows = self._last_known(labels)
                if rows:
                    self.console.print(self._table("last known values — STALE", rows, labels, deltas=False))
                else:
                    self.console.print("no values stored yet for the tracked wallets")
            else:
                gone = (now - self.failing_since).total_seconds()
                self.console.print(Text(f"{now:%H:%M:%S} still failing ({gone:.0f} s, the values above are STALE): "
                                        f"{why}", style="red"), soft_wrap=True)
        else:
            if self.failing_since is not None:
                gone = (now - self.failing_since).total_seconds()
                self.console.print(Text(f"sync recovered after {gone:.0f} s", style="green"))
                self.failing_since = None
            self._changes(report, labels)
            for b in sync.batches:
                if b.error and b in stored:
                    self.console.print(f"[yellow]{escape(b.chain)}: {b.status}:[/] {escape(b.error)}", soft_wrap=True)
        for line in cycle_summary(report):
            self.console.print(line, soft_wrap=True)

    def _headlines(self, wallets: list[str], labels: dict[str, str]) -> None:
        """Each wallet's one-line answer (lowest venue health, unified health, first liquidation), riskiest
        first, for the first ``max_headlines`` wallets."""
        for wallet in wallets[: self.max_headlines]:
            doc = health_view(self.store, wallet, stale_after_s=self.stale_after_s)
            text = doc["summary"]["text"]
            if doc["venues"]:
                self.console.print(Text.assemble((self._name(wallet, labels), "bold"), ": ", text))
        if len(wallets) > self.max_headlines:
            self.console.print(Text(f"… {len(wallets) - self.max_headlines} more wallets (see the dashboard or "
                                    "`xmargin health ADDRESS`)", style="dim"))

    def _changes(self, report: CycleReport, labels: dict[str, str]) -> None:
        healths = [h for h in report.sync.healths() if has_exposure(h)]
        blocks = sorted({b.block.number for b in report.sync.batches if b.block is not None})
        at = f"block {', '.join(map(str, blocks))}" if blocks else "this cycle"
        rows = [_Row(h.wallet, h.venue, h.kind, h.health_factor, h.collateral_usd, h.debt_usd, check_text(h))
                for h in healths]
        if not self.shown_once:
            if rows:
                self.console.print(self._table(f"health at {at}", rows, labels, deltas=False))
                self._headlines(sorted({r.wallet for r in rows}, key=lambda w: min(
                    (r.health for r in rows if r.wallet == w and r.health is not None), default=math.inf)), labels)
            else:
                self.console.print(f"{at}: no tracked wallet holds a position on any venue")
            self.shown_once = True
        else:
            changed = [r for r in rows if (r.wallet, r.venue) not in self.last
                       or _moved(self.last[(r.wallet, r.venue)], r.health)]
            if changed:
                self.console.print(self._table(f"changed at {at}", changed, labels, deltas=True))
                self._headlines(list(dict.fromkeys(r.wallet for r in changed)), labels)
            else:
                self.console.print(Text(f"{at}: no change ({len(rows)} positions, "
                                        f"{len({r.wallet for r in rows})} wallets)", style="dim"))
        mismatched = [h for h in healths if h.matches_onchain is False]
        for h in mismatched:
            self.console.print(Text.assemble(f"{self._name(h.wallet, labels)} {h.venue}: ", check_text(h)))
        self.last.update({(r.wallet, r.venue): r.health for r in rows})


def _moved(before: float | None, after: float | None) -> bool:
    if before is None or after is None:
        return (before is None) != (after is None)
    return abs(after - before) >= MIN_CHANGE
