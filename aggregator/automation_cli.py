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
from rich import box
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


def _rule_condition(kind: str, params: dict[str, Any]) -> str:
    """A rule's condition in words: ``main_market health < 1.3``, ``WETH below $3,000``."""
    p = params
    venue = p.get("venue")
    if kind == "venue_health_below":
        return f"{venue or 'any venue'} health < {p.get('threshold')}"
    if kind == "unified_health_below":
        return f"unified health < {p.get('threshold')}"
    if kind == "move_to_liquidation_below":
        return f"liquidation within {p.get('threshold')} %" + (f" on {venue}" if venue else "")
    if kind == "price_cross":
        level = p.get("level")
        shown = f"${level:,.2f}" if isinstance(level, int | float) else str(level)
        return f"{p.get('asset')} {p.get('direction', 'crosses')} {shown}"
    if kind == "oracle_invalid":
        return f"bad oracle: {p.get('asset') or venue or 'any'}"
    return json.dumps(p)


@alert_app.command("list")
def alert_list(
    address: Annotated[str | None, typer.Argument()] = None,
    as_json: JsonOpt = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column (hysteresis, cooldown, severity).")] = False,
) -> None:
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
    if not rules:
        console.print("no alert rules" + (f" for {wallet}" if wallet else "") + " — add one with `xmargin alert add`")
        return
    from aggregator.render import short_hex

    table = Table("id", "wallet", "rule", "state", "fired")
    if wide:
        for col in ("hysteresis", "cooldown s", "severity"):
            table.add_column(col)
    for c in table.columns:
        c.overflow = "fold"
    for r in rules:
        row = [str(r.id), short_hex(r.wallet), _rule_condition(r.kind, dict(r.params)),
               "firing" if r.active else "armed", str(r.episode)]
        if wide:
            row += [f"{r.hysteresis:g}", f"{r.cooldown_s:g}", r.severity]
        table.add_row(*row)
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
    if not alerts:
        console.print("no alert has fired" + (f" for {wallet}" if wallet else "") + " yet")
        return
    table = Table("fired at (UTC)", "block", "severity", "message", "state")
    for c in table.columns:
        c.overflow = "fold"
    for a in alerts:
        table.add_row(a.fired_at.astimezone(UTC).strftime("%m-%d %H:%M:%S"), str(a.block_number or ""), a.severity,
                      a.message, a.state + (f" ({a.last_error})" if a.last_error else ""))
    console.print(table)


KEEPER_FAILURES = frozenset({"error", "stale"})
"""Outcomes of ``keeper plan`` that mean no plan could be made: the command exits 1."""


@keeper_app.command("plan")
def keeper_plan(address: str, as_json: JsonOpt = False) -> None:
    """Plan and simulate a rebalance for a wallet from its newest sync — a dry run, never executed (the signing
    key is never read). Exits 1 when no plan could be made."""
    from rich.markup import escape

    from aggregator.keeper.runner import Keeper

    wallet = _Ctx.address(address)
    settings = _Ctx.settings()
    dry = settings.model_copy(update={"keeper": settings.keeper.model_copy(update={"enabled": True,
                                                                                   "execute": False})})
    with _Ctx.store(settings) as store, Keeper(dry, store, dry_run=True, quiet=True) as keeper:
        outcomes = keeper.run([wallet])
    if not outcomes:
        _fail("no chain with a lending venue is configured")
    failed = any(o.status in KEEPER_FAILURES for o in outcomes)
    if as_json:
        _print_json([{"wallet": o.wallet, "status": o.status, "message": o.message, "plan_id": o.plan_id,
                      "actions": [dataclasses.asdict(a) | {"symbol": o.symbols.get(a.token, a.token)}
                                  for a in o.plan.actions] if o.plan else [],
                      "health_before": o.plan.health_before if o.plan else None,
                      "health_after": o.plan.health_after if o.plan else None} for o in outcomes])
        if failed:
            raise typer.Exit(1)
        return
    for o in outcomes:
        message = o.message.removeprefix(f"{o.wallet}: ")
        line = f"{o.wallet}: [bold]{o.status}[/]" + (f" — {escape(message)}" if message else "")
        (err if o.status in KEEPER_FAILURES else console).print(line, soft_wrap=True)
        if o.plan is None:
            continue
        for a in o.plan.actions:
            symbol = o.symbols.get(a.token, a.token)
            console.print(f"  {a.kind:8} {a.amount:>16,.6f} {escape(symbol)} on {_venue(a.venue)}  (${a.usd:,.2f})",
                          soft_wrap=True)
        for venue, before in o.plan.health_before.items():
            after = o.plan.health_after.get(venue)
            console.print(f"  {_venue(venue)}: health {_hf(before)} → {_hf(after)}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _hf(value: float | None) -> str:
    return "∞" if value is None or value == float("inf") else f"{value:.4f}"


def _mode(execute: bool) -> str:
    return "execute" if execute else "dry run"


@keeper_app.command("plans")
def keeper_plans(
    address: Annotated[str | None, typer.Argument()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Stored plans, newest first: mode (dry run / execute), status, actions, transactions (hashes shortened;
    full in --json). A plan seen again block after block is one row: its blocks run first–last seen."""
    from rich.markup import escape

    from aggregator.render import short_hex

    wallet = _Ctx.address(address) if address else None
    with _Ctx.store(_Ctx.settings()) as store:
        plans = store.list_plans(wallet, limit=limit)
        txs = {p.id: store.plan_txs(p.id) for p in plans}
    if as_json:
        _print_json([{"id": p.id, "wallet": p.wallet, "chain_id": p.chain_id, "block": p.block_number,
                      "last_seen_block": p.last_seen_block, "seen_count": p.seen_count,
                      "created_at": p.created_at, "updated_at": p.updated_at, "last_seen_at": p.last_seen_at,
                      "mode": _mode(p.execute), "execute": p.execute, "signer": p.signer, "status": p.status,
                      "usd_total": p.usd_total, "plan": dict(p.plan),
                      "simulation": dict(p.simulation) if p.simulation else None, "error": p.error,
                      "txs": [{"seq": t.seq, "description": t.description, "to": t.to_address, "nonce": t.nonce,
                               "hash": t.tx_hash, "status": t.status, "block": t.block_number,
                               "gas_used": t.gas_used} for t in txs[p.id]]} for p in plans])
        return
    if not plans:
        console.print("no keeper plans stored" + (f" for {wallet}" if wallet else ""))
        return
    wallets = {p.wallet for p in plans}
    one = wallets.pop() if len(wallets) == 1 else None
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"keeper plans of {one}" if one else None)
    table.add_column("id", no_wrap=True)
    if one is None:
        table.add_column("wallet", no_wrap=True)
    table.add_column("block", no_wrap=True)
    table.add_column("status", ratio=2, overflow="fold")
    table.add_column("actions", ratio=3, overflow="fold")
    table.add_column("transactions", ratio=2, min_width=11, overflow="fold")
    for p in plans:
        actions = "\n".join(f"{a['kind']} {_amount(a['amount'])} {a.get('symbol', '?')} on {_venue(a['venue'])} "
                            f"(${a['usd']:,.0f})" for a in p.plan.get("actions", ()))
        blocks = str(p.block_number) + (f"–{p.last_seen_block}" if p.last_seen_block != p.block_number else "")
        status = (f"[bold]{p.status}[/]" + (f" ×{p.seen_count}" if p.seen_count > 1 else "")
                  + f"\n{_mode(p.execute)}" + (f"\n{escape(p.error)}" if p.error else ""))
        sent = "\n".join(f"{short_hex(t.tx_hash)} {t.status}" for t in txs[p.id])
        cells = [str(p.id)] + ([short_hex(p.wallet)] if one is None else [])
        table.add_row(*cells, blocks, status, escape(actions), sent)
    console.print(table)


def _venue(name: str) -> str:
    """``<venue>:0xa1ca…b6fb``: a planner venue with its market id shortened."""
    from aggregator.render import short_hex

    venue, _, market = name.partition(":")
    return f"{venue}:{short_hex(market)}" if market else venue


def _amount(value: float) -> str:
    """``1500.0`` → ``1,500``; ``0.012345678`` → ``0.0123457`` (six significant digits, no exponent)."""
    text = f"{value:,.6g}"
    return f"{value:,.6f}".rstrip("0").rstrip(".") if "e" in text else text


def register(app: typer.Typer, settings: Callable[[], Settings], store: Callable[[Settings], Store],
             address: Callable[[str], str]) -> None:
    """Add the ``alert`` and ``keeper`` groups to ``app``."""
    _Ctx.settings, _Ctx.store, _Ctx.address = settings, store, address
    app.add_typer(alert_app, name="alert")
    app.add_typer(keeper_app, name="keeper")
