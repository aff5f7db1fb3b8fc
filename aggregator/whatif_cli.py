"""``xmargin whatif ADDRESS --price WETH=3000 --repay VENUE:USDC=5000 --supply VENUE:WETH@MARKET=2 …``.

Every venue's health, the unified health and the liquidation prices before and after the change, from the newest
stored snapshots with the sync's own engine (:mod:`aggregator.whatif`); nothing is sent to any chain. Registered
by :mod:`aggregator.cli`. The examples in the help, and what ``@MARKET`` picks, are the venues' what-if parts'
(:mod:`aggregator.venues.whatif`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from aggregator.config import Settings
from aggregator.render import short_hex
from db import Store

__all__ = ["register"]

console = Console()
err = Console(stderr=True)


class _Ctx:
    settings: Callable[[], Settings]
    store: Callable[[Settings], Store]
    address: Callable[[str], str]


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # one line, however long
    raise typer.Exit(code)


def _change_opt(action: str) -> Any:
    return typer.Option(f"--{action}", metavar="VENUE:ASSET[@MARKET]=AMOUNT",
                        help=f"{action.capitalize()} AMOUNT tokens (repeatable).")


def whatif(
    address: str,
    price: Annotated[list[str] | None, typer.Option(
        "--price", metavar="SYMBOL=USD", help="Move SYMBOL's price on every venue, e.g. WETH=3000 (repeatable).",
    )] = None,
    supply: Annotated[list[str] | None, _change_opt("supply")] = None,
    repay: Annotated[list[str] | None, _change_opt("repay")] = None,
    withdraw: Annotated[list[str] | None, _change_opt("withdraw")] = None,
    borrow: Annotated[list[str] | None, _change_opt("borrow")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """What ADDRESS's health would be after price moves and its own supply / repay / withdraw / borrow (applied in
    that order): every venue and the unified health, before and after. Nothing is sent to any chain.

    (The help shown adds an example of each change and what @MARKET picks: :class:`_WhatIfCommand`.)
    """
    from aggregator.whatif import NoSnapshotError, WhatIfError, cli_scenario
    from aggregator.whatif import whatif as compute

    addr = _Ctx.address(address)
    try:
        scenario = cli_scenario(price or (), supply or (), repay or (), withdraw or (), borrow or ())
    except WhatIfError as exc:
        _fail(str(exc))
    if not scenario.prices and not scenario.changes:
        _fail("nothing to change: give --price, --supply, --repay, --withdraw or --borrow")
    with _Ctx.store(_Ctx.settings()) as store:
        if store.get_wallet(addr) is None:
            _fail(f"{addr} is not tracked: `xmargin wallet add {addr}` then `xmargin sync --once`", code=1)
        try:
            doc = compute(store, addr, scenario)
        except NoSnapshotError as exc:
            _fail(str(exc), code=1)
        except WhatIfError as exc:
            _fail(str(exc))
    if as_json:
        print(json.dumps(doc))
        return
    _print(doc)


def _hf(x: float | None) -> str:
    return "∞" if x is None else f"{x:,.4f}"


def _delta(before: float | None, after: float | None) -> Text:
    if before is None or after is None:
        return Text("" if before == after else "–", style="dim")
    d = after - before
    if abs(d) < 5e-5:
        return Text("0", style="dim")
    return Text(f"{'+' if d > 0 else '−'}{abs(d):,.4f}", style="green" if d > 0 else "red")


def _style(x: float | None, healthy: bool = True) -> str:
    if not healthy or (x is not None and x < 1.05):
        return "bold red"
    if x is not None and x < 1.25:
        return "yellow"
    return "green"


def _number(text: str) -> str:
    """An exact decimal with thousands separators: ``"5000"`` → ``5,000``, ``"0.000001"`` stays."""
    return f"{Decimal(text):,f}"


def _what(doc: dict[str, Any]) -> str:
    parts = [f"{p['asset']} = ${_number(p['price'])}" for p in doc["prices"]]
    for c in doc["changes"]:
        where = c["venue"] + (f" ({c['market']})" if c["market"] else "")
        parts.append(f"{c['action']} {_number(c['amount'])} {c['asset']} on {where}")
    return " · ".join(parts)


def _print(doc: dict[str, Any]) -> None:
    console.print(f"[bold]what if[/] {escape(_what(doc))}")
    console.print(f"{short_hex(doc['wallet'])} from block {doc['block']} ({doc['block_timestamp']}) — nothing is sent "
                  "to any chain", style="dim")
    table = Table("venue", "health now", "after", "Δ", title_justify="left")
    for v in doc["venues"]:
        b, a = v["before"], v["after"]
        if b["health_factor"] is None and a["health_factor"] is None and not b["positions"] and not a["positions"]:
            continue
        after = Text(_hf(a["health_factor"]), style=_style(a["health_factor"], a["healthy"]))
        table.add_row(v["venue"], Text(_hf(b["health_factor"]), style=_style(b["health_factor"], b["healthy"])),
                      after, _delta(b["health_factor"], a["health_factor"]))
    ub, ua = doc["unified"]["before"], doc["unified"]["after"]
    if ub is not None and ua is not None:
        table.add_section()
        table.add_row(Text("unified", style="bold"), _hf(ub.get("unified_health")), _hf(ua.get("unified_health")),
                      _delta(ub.get("unified_health"), ua.get("unified_health")))
    console.print(table)
    if ua is not None:
        _first_liquidation(ub or {}, ua)
        _liquidation_prices(ub or {}, ua)
    for c in doc["changes"]:
        if c["refused"]:
            console.print(f"[bold red]the protocol would refuse[/] step {c['step']} ({c['action']} {c['amount']} "
                          f"{escape(c['asset'])} on {c['venue']}): {escape(c['refused'])}")
    for note in doc["notes"]:
        console.print(f"[dim]note: {escape(note)}[/]")
    console.print("[dim]unified health: equity ÷ the margin the whole book needs under the scenarios, every "
                  "venue's liquidation applied (< 1: a scenario would wipe the equity)[/]")


def _first_liquidation(before: dict[str, Any], after: dict[str, Any]) -> None:
    fa, fb = after.get("first_liquidation") or {}, before.get("first_liquidation") or {}
    nearest = fa.get("nearest")
    if nearest:
        was = (fb.get("nearest") or {}).get("price_usd")
        move = nearest.get("move")
        console.print(f"first liquidation: {nearest['venue']} if {nearest['asset']} {nearest['direction']} to "
                      f"${nearest['price_usd']:,.4g}" + (f" ({move:+.1%})" if move is not None else "")
                      + (f", was ${was:,.4g}" if was is not None else ""))
        return
    for side, word, sign in (("down", "fall", "−"), ("up", "rise", "+")):
        a, b = fa.get(side) or {}, fb.get(side) or {}
        if a.get("move") is not None:
            was = f" (was {sign}{abs(b['move']):.1%})" if b.get("move") is not None else ""
            console.print(f"first liquidation on a uniform {word}: {sign}{abs(a['move']):.1%} ({a['venue']}){was}")


def _liquidation_prices(before: dict[str, Any], after: dict[str, Any]) -> None:
    rows = after.get("liquidation_prices") or []
    if not rows:
        console.print("no liquidation price after the change (no venue can be liquidated by a single price)")
        return
    was = {(r["venue"], r["asset"], r["side"]): r["price_usd"] for r in before.get("liquidation_prices") or []}
    table = Table("venue", "asset", "liquidated", "price after", "before", "now", title="liquidation prices",
                  title_justify="left")
    for r in rows:
        prev = was.get((r["venue"], r["asset"], r["side"]))
        price = r["price_usd"]
        table.add_row(r["venue"], r["asset"], r["side"], "–" if price is None else f"${price:,.2f}",
                      "–" if prev is None else f"${prev:,.2f}", f"${r['current_price_usd']:,.2f}")
    console.print(table)


_HELP = ("What ADDRESS's health would be after price moves and its own supply / repay / withdraw / borrow (applied "
         "in\nthat order): every venue and the unified health, before and after. Nothing is sent to any chain.")


class _WhatIfCommand(typer.core.TyperCommand):
    """``whatif``, whose help gains the venues' texts when it is shown — an example of each change and what
    ``@MARKET`` picks, from the venues' what-if parts — so that the parts are imported only then."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from aggregator.venues.whatif import change_example, whatif_parts

        markets = [part.cli_market_help for _, part in whatif_parts() if part.cli_market_help]
        self.help = _HELP + "".join(f"\n\n@MARKET picks {m}" for m in markets)
        for param in self.params:
            if param.param_type_name == "option" and param.name in ("supply", "repay", "withdraw", "borrow"):
                example = change_example(param.name)  # type: ignore[arg-type]  # one of the actions
                param.help = f"{param.name.capitalize()} AMOUNT tokens, e.g. {example} (repeatable)."  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


def register(app: typer.Typer, settings: Callable[[], Settings], store: Callable[[Settings], Store],
             address: Callable[[str], str]) -> None:
    """Add ``whatif`` to ``app``."""
    _Ctx.settings, _Ctx.store, _Ctx.address = settings, store, address
    app.command("whatif", help=_HELP, cls=_WhatIfCommand)(whatif)
