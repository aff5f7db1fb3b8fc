"""``xmargin alert add|list|remove|history`` and ``xmargin keeper plan|plans``.

Registered by :mod:`aggregator.cli`; the settings and the store come from there (``--config``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aggregator.config import Settings
from db import Store, UnknownReferenceError

__all__ = ["register"]

console = Console()
err = Console(stderr=True)

alert_app = typer.Typer(no_args_is_help=True, help="Alert rules per wallet (evaluated after every sync).")
keeper_app = typer.Typer(no_args_is_help=True, help="Cross-venue rebalances: plan, simulate, execute.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


class Kind(StrEnum):
    venue_health_below = "venue_health_below"
    unified_health_below = "unified_health_below"
    move_to_liquidation_below = "move_to_liquidation_below"
    oracle_invalid = "oracle_invalid"
    price_cross = "price_cross"


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


class Direction(StrEnum):
    above = "above"
    below = "below"


class _Ctx:
    settings: Callable[[], Settings]
    store: Callable[[Settings], Store]
    address: Callable[[str], str]


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def _refuse_rule(message: str) -> NoReturn:
    """A refused ``alert add``: one line on stderr however long (user text shown as typed, never as markup)."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


@alert_app.command("add")
def alert_add(
    address: str,
    kind: Annotated[Kind, typer.Argument(help="What to watch.")],
    venue: Annotated[str | None, typer.Option(help="venue_health_below: the venue's name.")] = None,
    threshold: Annotated[float | None, typer.Option(
        help="Health (venue/unified) or percent (move_to_liquidation_below) below which the rule fires.")] = None,
    asset: Annotated[str | None, typer.Option(help="price_cross / oracle_invalid: the asset's symbol.")] = None,
    level: Annotated[float | None, typer.Option(help="price_cross: the price level in USD.")] = None,
    direction: Annotated[Direction | None, typer.Option(help="price_cross: fire above or below the level.")] = None,
    hysteresis: Annotated[float, typer.Option(
        help="How far back past the threshold (in the value's unit) before the rule can fire again.")] = 0.0,
    cooldown: Annotated[float, typer.Option(help="Minimum seconds between two alerts of this rule.")] = 0.0,
    severity: Annotated[Severity, typer.Option()] = Severity.warning,
    as_json: JsonOpt = False,
) -> None:
    """Add an alert rule for a tracked wallet."""
    from aggregator.alerts.engine import check_rule

    wallet = _Ctx.address(address)
    raw: dict[str, object] = {"venue": venue, "threshold": threshold, "asset": asset, "level": level,
                              "direction": direction.value if direction else None}
    given = {k: v for k, v in raw.items() if v is not None}
    try:
        check_rule(kind.value, given)
    except ValueError as exc:
        _refuse_rule(str(exc))
    if hysteresis < 0 or cooldown < 0:
        _refuse_rule("--hysteresis and --cooldown must be >= 0")
    settings = _Ctx.settings()
    venues = [v.name for v in settings.venues]
    if venue is not None and venue not in venues:
        _refuse_rule(f"unknown venue {venue!r}; configured: {', '.join(venues) or 'none'}")
    with _Ctx.store(settings) as store:
        try:  # the asset against the prices the store holds (a rule on another one would never fire)
            params = check_rule(kind.value, given, assets=store.priced_symbols(), venues=venues)
        except ValueError as exc:
            _refuse_rule(str(exc))
        try:
            rule = store.add_rule(wallet, kind.value, params, hysteresis=hysteresis, cooldown_s=cooldown,
                                  severity=severity.value, now=datetime.now(UTC))
        except UnknownReferenceError:
            _refuse_rule(f"{wallet} is not tracked; add it first with `xmargin wallet add {wallet}`")
    if as_json:
        _print_json({"id": rule.id, "wallet": rule.wallet, "kind": rule.kind, "params": dict(rule.params)})
    else:
        console.print(f"rule {rule.id} added: {rule.kind} {params} for {rule.wallet}")


@alert_app.command("list")
def alert_list(address: Annotated[str | None, typer.Argument()] = None, as_json: JsonOpt = False) -> None:
    """List alert rules (of one wallet when given) with their state."""
    wallet = _Ctx.address(address) if address else None
    with _Ctx.store(_Ctx.settings()) as store:
        rules = store.list_rules(wallet)
    if as_json:
        _print_json([{"id": r.id, "wallet": r.wallet, "kind": r.kind, "params": dict(r.params),
                      "hysteresis": r.hysteresis, "cooldown_s": r.cooldown_s, "severity": r.severity,
                      "active": r.active, "episodes": r.episode, "last_value": r.last_value,
                      "last_fired_at": r.last_fired_at} for r in rules])
        return
    table = Table("id", "wallet", "kind", "params", "hysteresis", "cooldown s", "severity", "state", "fired")
    for r in rules:
        table.add_row(str(r.id), r.wallet, r.kind, json.dumps(dict(r.params)), f"{r.hysteresis:g}",
                      f"{r.cooldown_s:g}", r.severity, "firing" if r.active else "armed", str(r.episode))
    console.print(table)


@alert_app.command("remove")
def alert_remove(rule_id: int) -> None:
    """Remove an alert rule (its alerts stay in the history)."""
    with _Ctx.store(_Ctx.settings()) as store:
        if not store.remove_rule(rule_id):
            _fail(f"no alert rule {rule_id}", code=1)
    console.print(f"rule {rule_id} removed")


@alert_app.command("history")
def alert_history(
    address: Annotated[str | None, typer.Argument()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Alerts fired, newest first, with their delivery state."""
    wallet = _Ctx.address(address) if address else None
    with _Ctx.store(_Ctx.settings()) as store:
        alerts = store.list_alerts(wallet, limit=limit)
    if as_json:
        _print_json([{"event_id": a.event_id, "rule_id": a.rule_id, "wallet": a.wallet, "fired_at": a.fired_at,
                      "block": a.block_number, "severity": a.severity, "message": a.message, "value": a.value,
                      "state": a.state, "attempts": a.attempts, "error": a.last_error} for a in alerts])
        return
    table = Table("fired at", "block", "severity", "message", "state")
    for a in alerts:
        table.add_row(a.fired_at.isoformat(timespec="seconds"), str(a.block_number or ""), a.severity, a.message,
                      a.state + (f" ({a.last_error})" if a.last_error else ""))
    console.print(table)


@keeper_app.command("plan")
def keeper_plan(address: str, as_json: JsonOpt = False) -> None:
    """Plan and simulate a rebalance for a wallet from its newest sync — a dry run, never executed."""
    from aggregator.keeper.runner import Keeper

    wallet = _Ctx.address(address)
    settings = _Ctx.settings()
    dry = settings.model_copy(update={"keeper": settings.keeper.model_copy(update={"enabled": True,
                                                                                   "execute": False})})
    with _Ctx.store(settings) as store, Keeper(dry, store, dry_run=True) as keeper:
        outcomes = keeper.run([wallet])
    if not outcomes:
        _fail("no chain with a lending venue is configured")
    if as_json:
        _print_json([{"wallet": o.wallet, "status": o.status, "message": o.message, "plan_id": o.plan_id,
                      "actions": [dataclasses.asdict(a) for a in o.plan.actions] if o.plan else [],
                      "health_before": o.plan.health_before if o.plan else None,
                      "health_after": o.plan.health_after if o.plan else None} for o in outcomes])
        return
    for o in outcomes:
        console.print(f"{o.wallet}: [bold]{o.status}[/]" + (f" — {o.message}" if o.message else ""))
        if o.plan is None:
            continue
        for a in o.plan.actions:
            console.print(f"  {a.kind:8} {a.amount:>16,.6f} of {a.token} on {a.venue}  (${a.usd:,.2f})")
        for venue, before in o.plan.health_before.items():
            after = o.plan.health_after.get(venue)
            console.print(f"  {venue}: health {_hf(before)} → {_hf(after)}")


def _hf(value: float | None) -> str:
    return "∞" if value is None or value == float("inf") else f"{value:.4f}"


@keeper_app.command("plans")
def keeper_plans(
    address: Annotated[str | None, typer.Argument()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Stored plans, newest first: status, actions, simulation, transactions."""
    wallet = _Ctx.address(address) if address else None
    with _Ctx.store(_Ctx.settings()) as store:
        plans = store.list_plans(wallet, limit=limit)
        txs = {p.id: store.plan_txs(p.id) for p in plans}
    if as_json:
        _print_json([{"id": p.id, "wallet": p.wallet, "block": p.block_number, "status": p.status,
                      "execute": p.execute, "usd_total": p.usd_total, "plan": dict(p.plan),
                      "simulation": dict(p.simulation) if p.simulation else None, "error": p.error,
                      "txs": [{"seq": t.seq, "description": t.description, "hash": t.tx_hash, "status": t.status}
                              for t in txs[p.id]]} for p in plans])
        return
    table = Table("id", "wallet", "block", "status", "USD", "actions", "error")
    for p in plans:
        actions = "; ".join(f"{a['kind']} {a['amount']:,.4g} {a['symbol']} on {a['venue']}"
                            for a in p.plan.get("actions", ()))
        table.add_row(str(p.id), p.wallet, str(p.block_number), p.status, f"{p.usd_total:,.0f}", actions,
                      p.error or "")
    console.print(table)


def register(app: typer.Typer, settings: Callable[[], Settings], store: Callable[[Settings], Store],
             address: Callable[[str], str]) -> None:
    """Add the ``alert`` and ``keeper`` groups to ``app``."""
    _Ctx.settings, _Ctx.store, _Ctx.address = settings, store, address
    app.add_typer(alert_app, name="alert")
    app.add_typer(keeper_app, name="keeper")
