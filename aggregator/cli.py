"""The ``xmargin`` command line.

Commands read the configuration (:mod:`aggregator.config`) and the store; the ``devnet`` group drives
the local chain used by the demo and the tests (it configures the product like any user would, by
writing a config file with the chain's RPC URL and addresses).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from aggregator.api_cli import HostOpt, PortOpt, PublicReadsOpt
from aggregator.config import ConfigError, Settings, load_settings
from connectors.errors import InvalidAddressError
from connectors.types import checksum, is_ens_name
from db.store import Store

if TYPE_CHECKING:
    from aggregator.devnet_cli import DevnetCommandError

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0] if __doc__ else None,
                  pretty_exceptions_enable=False)  # an unexpected error is one line (see main), never a traceback
wallet_app = typer.Typer(no_args_is_help=True, help="Track wallets.")
devnet_app = typer.Typer(no_args_is_help=True, help="The local chain with the protocols' own bytecode.")
app.add_typer(wallet_app, name="wallet")
app.add_typer(devnet_app, name="devnet")

console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Config file (TOML).", dir_okay=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


class _State:
    config: Path | None = None


def _settings() -> Settings:
    try:
        return load_settings(_State.config)
    except ConfigError as exc:
        _fail(str(exc))


def _store(settings: Settings) -> Store:
    return Store.open(settings.db_url, change_policy=settings.store.change_policy(),
                      change_only=settings.store.change_only, write_cache_size=settings.store.write_cache_size)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _address(value: str) -> str:
    try:
        return checksum(value)
    except InvalidAddressError as exc:
        _fail(str(exc))


@app.callback()
def _root(
    config: ConfigOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
) -> None:
    """xmargin — one health for every position of a wallet, across venues."""
    _State.config = config
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------------------------------------- wallets
@wallet_app.command("add")
def wallet_add(
    address: str,
    label: Annotated[str | None, typer.Option("--label", "-l", help="A name to show beside the address.")] = None,
    chain: Annotated[str | None, typer.Option(
        "--chain", help="The configured chain an ENS name is resolved on (default: the first one).")] = None,
) -> None:
    """Track ADDRESS: an address, or an ENS name (name.eth), resolved at the chain's latest block and stored with
    the address."""
    settings = _settings()
    ens_name: str | None = None
    if is_ens_name(address):
        addr, ens_name, block = _resolve_ens(settings, address, chain)
    else:
        addr = _address(address)
    with _store(settings) as store:
        store.add_wallets([(addr, label)])
        if ens_name is not None:
            store.set_ens_name(addr, ens_name)
    shown = ", ".join(x for x in (label, ens_name and f"{ens_name} at block {block}") if x)
    console.print(f"tracking {addr}" + (f" ({shown})" if shown else ""))


def _resolve_ens(settings: Settings, name: str, chain_name: str | None) -> tuple[str, str, int]:
    """(address, normalised name, block) of an ENS name on a configured chain; a clear error otherwise."""
    from connectors.errors import ConnectorError
    from connectors.evm.ens import resolve_name
    from connectors.evm.rpc import RpcClient

    chains = [c for c in settings.chains if chain_name is None or c.name == chain_name]
    if not chains:
        _fail(f"no chain {chain_name!r} is configured" if chain_name else
              "an ENS name needs a configured chain to resolve it on")
    cfg = chains[0]
    try:
        with RpcClient(cfg.resolve_rpc_url(), timeout_s=cfg.timeout_s, max_retries=cfg.max_retries) as rpc:
            found = resolve_name(rpc, name, "latest")
    except (ConnectorError, ConfigError) as exc:
        _fail(f"cannot resolve {name} on {cfg.name}: {exc}")
    return found.address, found.name, found.block.number


@wallet_app.command("list")
def wallet_list(as_json: JsonOpt = False) -> None:
    """List tracked wallets."""
    with _store(_settings()) as store:
        rows = store.list_wallets()
    if as_json:
        print(json.dumps([{"address": w.address, "label": w.label, "ens_name": w.ens_name} for w in rows]))
        return
    from rich.table import Table

    if not rows:
        console.print("no wallet tracked — add one with `xmargin wallet add ADDRESS`")
        return
    table = Table("address", "label", "ENS name")  # the full address: it is what a user copies from here
    for w in rows:
        table.add_row(w.address, w.label or "", w.ens_name or "")
    console.print(table)


@wallet_app.command("remove")
def wallet_remove(address: str) -> None:
    """Stop tracking ADDRESS (its history stays in the store)."""
    addr = _address(address)
    with _store(_settings()) as store:
        removed = store.remove_wallet(addr)
    if not removed:
        _fail(f"{addr} is not tracked", code=1)
    console.print(f"removed {addr}")


# ------------------------------------------------------------------------------------------------- sync
@app.command("sync")
def sync(
    once: Annotated[bool, typer.Option("--once", help="Run one sync and exit (otherwise see `xmargin run`).")] = False,
    block: Annotated[int | None, typer.Option("--block", help="Pin the read to this block (default: latest).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read every venue for every tracked wallet, compute health, store it."""
    from aggregator.pipeline import sync_once
    from aggregator.render import venue_summary_table

    if not once:
        _fail("use `xmargin sync --once`, or `xmargin run` for the schedule")
    settings = _settings()
    if not settings.chains:
        _fail("no chain configured: set XMARGIN_CONFIG (see README), or run `xmargin devnet up`")
    with _store(settings) as store:
        labels = {w.address: w.label or "" for w in store.list_wallets()}
        with console.status("syncing…", spinner="dots") if not as_json else nullcontext():
            report = sync_once(settings, store, block_number=block)
    summary = [
        {"chain": b.chain, "block": b.block.number if b.block else None, "wallets": b.wallets,
         "status": str(b.status), "sync_run_id": b.sync_run_id, "error": b.error}
        for b in report.batches
    ]
    if as_json:
        print(json.dumps({"seconds": round(report.seconds, 3), "batches": summary}))
    else:
        stored = [b for b in report.batches if b.sync_run_id is not None and b.block is not None
                  and str(b.status) != "failed"]
        if stored:
            blocks = [b.block.number for b in stored if b.block]
            console.print(venue_summary_table(list(report.healths()), labels, max(blocks) if blocks else None))
        for b in report.batches:
            if b.error:
                what = "failed, nothing stored" if b not in stored else str(b.status)
                err.print(f"[bold red]{escape(b.chain)}: {what}:[/] {escape(b.error)}", soft_wrap=True)
        wallets = {w for b in stored for r in b.readings for h in r.healths for w in (h.wallet,)}
        if not report.batches:
            console.print("nothing to sync: no venue is configured on any chain")
        elif stored:
            partial = "" if report.ok else " (with errors, above)"
            console.print(f"synced {len(wallets) or len(labels)} wallet(s) at block "
                          f"{', '.join(str(b.block.number) for b in stored if b.block)} in {report.seconds:.2f} s"
                          + partial)
        else:
            err.print("sync failed: nothing was stored; the store keeps the last good data, now marked stale")
    if not report.ok:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------------------- health
@app.command("health")
def health(
    address: str,
    as_json: JsonOpt = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column (price, collateral flag).")] = False,
) -> None:
    """Show ADDRESS's latest health on every venue, riskiest first, from the store — with its age, and STALE when
    syncing fails or the data is older than the bound."""
    from aggregator.documents import UNIFIED_HEALTH_MEANING, health_view
    from aggregator.render import health_table, wallet_header

    addr = _address(address)
    settings = _settings()
    with _store(settings) as store:
        wallet = store.get_wallet(addr)
        if wallet is None:
            _fail(f"{addr} is not tracked: `xmargin wallet add {addr}` then `xmargin sync --once`", code=1)
        doc = health_view(store, addr, stale_after_s=settings.stale_bound_s)
    if as_json:
        print(json.dumps(doc))
        return
    for line in wallet_header(doc, wallet.label):
        console.print(line)
    if not doc["venues"]:
        console.print("no snapshot on the current chain yet — run `xmargin sync --once`")
        if doc["freshness"]["stale"]:
            raise typer.Exit(1)
        return
    for table in health_table(doc, wide=wide):
        console.print(table)
    console.print(Text(UNIFIED_HEALTH_MEANING, style="dim"))


@app.command("chains")
def chains(as_json: JsonOpt = False) -> None:
    """The chains the store holds data from: the current one behind each chain id, and the ones it replaced
    (a reset devnet, a fork, an RPC pointed elsewhere) — whose data is kept but never served as current."""
    from rich.table import Table

    from aggregator.render import short_hex

    with _store(_settings()) as store:
        rows = store.list_chains()
    docs = [{"id": c.id, "name": c.name, "chain_id": c.chain_id, "genesis_hash": c.genesis_hash,
             "first_block": c.first_block, "last_block": c.last_block, "last_block_hash": c.last_block_hash,
             "created_at": c.created_at.isoformat(), "current": c.retired_at is None,
             "retired_at": c.retired_at.isoformat() if c.retired_at else None, "retired_reason": c.retired_reason}
            for c in rows]
    if as_json:
        print(json.dumps(docs))
        return
    if not rows:
        console.print("no chain synced yet — run `xmargin sync --once`")
        return
    table = Table("name", "chain id", "genesis", "blocks", "state", title="chains in the store", title_justify="left")
    for c in rows:
        blocks = f"{c.first_block}–{c.last_block}" if c.first_block is not None else "-"
        state = Text("current", style="green") if c.retired_at is None else Text(
            f"retired {c.retired_at:%Y-%m-%d %H:%M}", style="dim")
        table.add_row(c.name or "-", str(c.chain_id), short_hex(c.genesis_hash) if c.genesis_hash else "unverified",
                      blocks, state)
    console.print(table)
    for c in rows:
        if c.retired_reason:
            console.print(Text(f"{c.name or c.chain_id} (genesis {short_hex(c.genesis_hash or '-')}, blocks "
                               f"{c.first_block}–{c.last_block}) {c.retired_reason}", style="dim"))


# ------------------------------------------------------------------------------------------------- risk
def _risk_inputs(addr: str) -> tuple[Any, list[dict[str, Any]], dict[str, Any], str | None]:
    """The wallet's book from its newest snapshots on the current chains, its venues, its health document (chain,
    freshness) and its label."""
    from aggregator.documents import health_view
    from aggregator.risk import wallet_book

    settings = _settings()
    with _store(settings) as store:
        wallet = store.get_wallet(addr)
        if wallet is None:
            _fail(f"{addr} is not tracked: `xmargin wallet add {addr}` then `xmargin sync --once`", code=1)
        latest = store.latest_health(addr)
        venues = store.list_venues()
        if not latest:
            _fail(f"{addr}: no snapshot on the current chain yet — run `xmargin sync --once`", code=1)
        doc = health_view(store, addr, stale_after_s=settings.stale_bound_s, latest=latest, with_risk=False)
    types = {v.name: str(v.config.get("type", "")) for v in venues}
    per_venue = [{k: v.get(k) for k in ("venue", "kind", "health_factor", "block")} for v in doc["venues"]]
    return wallet_book(addr, latest, types), per_venue, doc, wallet.label


@app.command("risk")
def risk(
    address: str,
    as_json: JsonOpt = False,
    horizon: Annotated[float, typer.Option("--horizon-days", help="Scenario horizon (days).", min=0.01)] = 1.0,
) -> None:
    """ADDRESS's risk across venues: unified health, scenario margin, netting benefit, first liquidation, VaR/ES."""
    from aggregator.documents import UNIFIED_HEALTH_MEANING, summary
    from aggregator.render import wallet_header
    from aggregator.risk import assess_book, risk_documents

    addr = _address(address)
    inputs, per_venue, health_doc, label = _risk_inputs(addr)
    try:
        result, scenarios, extras = assess_book(inputs, horizon)
        doc = {**risk_documents(inputs, result, scenarios, extras)[0], "venues": per_venue}
    except (ValueError, KeyError, ArithmeticError) as exc:
        _fail(f"{addr}: the risk engine could not assess this book: {exc}", code=1)
    doc["chain"] = health_doc["chain"]
    doc["freshness"] = health_doc["freshness"]
    doc["summary"] = summary(health_doc["venues"], doc, health_doc["freshness"])
    if as_json:
        print(json.dumps(doc))
        return
    from rich.table import Table

    for line in wallet_header({**health_doc, "summary": doc["summary"]}, label):
        console.print(line)
    uh = doc["unified_health"]
    console.print(f"unified health {'∞' if uh is None else f'{uh:.3f}'} · equity ${doc['equity_usd']:,.2f} · "
                  f"portfolio margin ${doc['portfolio_margin_usd']:,.2f}", soft_wrap=False)
    worst = doc.get("worst_scenario_label") or doc.get("worst_scenario")
    if worst:
        console.print(f"worst scenario: {worst}")
    console.print(f"margin venue by venue ${doc['sum_of_venue_margins_usd']:,.2f} → netting benefit "
                  f"${doc['netting_benefit_usd']:,.2f}")
    fl = doc["first_liquidation"]
    for side, word in (("down", "fall"), ("up", "rise")):
        if fl[side]["move"] is not None:
            console.print(f"first liquidation on a common {word} of every risky price: {fl[side]['move']:.2%} "
                          f"({fl[side]['venue']})")
    for note in doc.get("flag_notes") or ():
        console.print(Text(f"note: {note}", style="dim"))
    table = Table("factor", "net exposure (USD)", "scan range", title="net exposure", title_justify="left")
    for f, v in doc["net_exposure_usd"].items():
        rng = doc["scan_ranges"].get(f)
        table.add_row(f, f"{v:,.2f}", f"{rng:.1%}" if rng is not None else "-")
    console.print(table)
    if doc["liquidation_prices"]:
        liq = Table("venue", "asset", "liquidated if", "now", "move", title="liquidation prices", title_justify="left")
        for row in sorted(doc["liquidation_prices"], key=lambda r: abs(r["price_usd"] / r["current_price_usd"] - 1)
                          if r["price_usd"] is not None else math.inf):
            if row["price_usd"] is None:
                continue
            move = row["price_usd"] / row["current_price_usd"] - 1
            liq.add_row(row["venue"], row["asset"],
                        f"{'falls' if row['side'] == 'below' else 'rises'} to ${row['price_usd']:,.4g}",
                        f"${row['current_price_usd']:,.4g}", f"{move:+.1%}")
        console.print(liq)
    else:
        console.print("no liquidation price: no single price move liquidates any venue of this wallet")
    if doc["var_es"]:
        var = Table("horizon", *(f"VaR {a}" for a in doc["var_es"]["1d"]), title="VaR / ES (USD, delta-normal EWMA)",
                    title_justify="left")
        for horizon_name, levels in doc["var_es"].items():
            var.add_row(horizon_name, *(f"{x['var_usd']:,.0f} / {x['es_usd']:,.0f}" for x in levels.values()))
        console.print(var)
    console.print(Text(UNIFIED_HEALTH_MEANING, style="dim"))


@app.command("stress")
def stress(
    address: str,
    replay: Annotated[str, typer.Option("--replay", help="YYYY-MM-DD[:YYYY-MM-DD]: a real price path to replay.")],
    as_json: JsonOpt = False,
) -> None:
    """Replay a real price path on ADDRESS's book: venues liquidate in order, hedges vanish."""
    from aggregator.stress import replay_path

    addr = _address(address)
    inputs, _, _, _ = _risk_inputs(addr)
    try:
        doc = replay_path(inputs, replay)
    except ValueError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(doc))
        return
    console.print(f"replay {doc['start']} → {doc['end']} ({doc['steps']} days) on {addr}: equity "
                  f"${doc['equity_start_usd']:,.2f} → ${doc['equity_end_usd']:,.2f}, liquidation losses "
                  f"${doc['liquidation_loss_usd']:,.2f}")
    from rich.table import Table

    if not doc["events"]:
        low = doc.get("lowest_health")
        console.print("no venue liquidated" + (f"; lowest health on the path: {low['venue']} {low['health']:.2f} at "
                                               f"{low['date']}" if low else " (nothing owed on any venue)"))
        return
    table = Table("date", "venue", "loss (USD)", "repaid (USD)", "seized (USD)", title="liquidations, in order",
                  title_justify="left")
    for e in doc["events"]:
        table.add_row(e["date"], e["venue"], f"{e['loss_usd']:,.2f}", f"{e['repaid_usd']:,.2f}",
                      f"{e['seized_usd']:,.2f}")
    console.print(table)


# -------------------------------------------------------------------------------------------- schedule
@app.command("run")
def run(
    interval: Annotated[float | None, typer.Option("--interval", help="Seconds between syncs.")] = None,
    host: HostOpt = None,
    port: PortOpt = None,
    public_reads: PublicReadsOpt = None,
    no_api: Annotated[bool, typer.Option("--no-api", help="Do not serve the API and dashboard.")] = False,
) -> None:
    """Sync, evaluate alert rules and run the keeper on a schedule until interrupted (never overlapping, missed
    runs coalesced), serving the HTTP API and the dashboard."""
    from aggregator.api_cli import api_settings
    from aggregator.scheduler import run_forever

    def overrides(base: Settings) -> Settings:
        """The command line's options over a configuration (also re-applied when the devnet's is re-read)."""
        out = api_settings(base, host, port, public_reads)
        if interval is not None:
            out = out.model_copy(update={"interval_s": interval})
        if no_api:
            out = out.model_copy(update={"api": out.api.model_copy(update={"enabled": False})})
        return out

    settings = overrides(_settings())
    from aggregator.api.server import ServerStartError

    try:
        run_forever(settings, console, reload=overrides)
    except ServerStartError as exc:
        _fail(str(exc))


@app.command("demo")
def demo(
    cycles: Annotated[int | None, typer.Option("--cycles", help="Stop after N sync cycles (default: run until Ctrl-C).",
                                              min=1)] = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between cycles.")] = 2.0,
) -> None:
    """Boot the devnet, seed it, sync in cycles with price moves, and print health as it changes."""
    from aggregator.demo import run_demo

    raise typer.Exit(run_demo(console, cycles=cycles, interval_s=interval))


# ----------------------------------------------------------------------------------------------- devnet
def _devnet_fail(exc: DevnetCommandError) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)  # one line, even in a narrow terminal
    raise typer.Exit(exc.code)


@devnet_app.command("up")
def devnet_up(
    port: Annotated[int | None, typer.Option(
        "--port", help="anvil's JSON-RPC port (default: the last run's when free, else any free one).")] = None,
    perp_port: Annotated[int | None, typer.Option(
        "--perp-port", help="The local perp API's port (default: the last run's when free, else any free one).")
    ] = None,
) -> None:
    """Start the local chain (deploying and caching it on first use) and write its xmargin config."""
    from aggregator.devnet_cli import DevnetCommandError, StageDisplay, up

    try:
        with StageDisplay(console) as progress:
            result = up(port, perp_port, progress)
    except DevnetCommandError as exc:
        _devnet_fail(exc)
    info = result.info
    verb = "already running" if result.already_running else "up"
    console.print(f"devnet {verb} at {info['rpc_url']} (chain {info['chain_id']}); perp API "
                  f"{info['services'].get('perp_api', 'none')}", soft_wrap=True)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    state = "written" if result.config_changed else "unchanged"
    console.print(f"config for xmargin ({state}): {result.config_path}  (export XMARGIN_CONFIG={result.config_path})",
                  soft_wrap=True)


@devnet_app.command("info")
def devnet_info(as_json: JsonOpt = False) -> None:
    """Print the running devnet's RPC URL, chain id and addresses."""
    from aggregator.devnet_cli import DevnetCommandError, info

    try:
        data: dict[str, Any] = info()
    except DevnetCommandError as exc:
        _devnet_fail(exc)
    if as_json:
        print(json.dumps(data))
        return
    console.print_json(json.dumps(data))


@devnet_app.command("set-price")
def devnet_set_price(symbol: str, usd: float) -> None:
    """Move SYMBOL's price to USD dollars on every venue of the devnet (feeds, market oracles, pools, perp marks)."""
    from aggregator.devnet_cli import DevnetCommandError, set_price

    try:
        sym = set_price(symbol, usd)
    except DevnetCommandError as exc:
        _devnet_fail(exc)
    console.print(f"{sym} = ${f'{usd:,.8f}'.rstrip('0').rstrip('.')}")  # the feeds hold 8 decimals


@devnet_app.command("seed")
def devnet_seed() -> None:
    """Open the demo positions and track the demo wallets."""
    from aggregator.devnet_cli import DevnetCommandError, StageDisplay, seed

    settings = _settings()
    try:
        with StageDisplay(console) as progress:
            result = seed(settings, progress)
    except DevnetCommandError as exc:
        _devnet_fail(exc)
    if result.already_seeded:
        console.print("the devnet was seeded already: its positions are as they were")
    for address, label in result.wallets:
        console.print(f"{'tracking' if result.already_seeded else 'seeded'} {address} ({label})")


@devnet_app.command("down")
def devnet_down() -> None:
    """Stop the devnet (the next `devnet up` reuses its ports when they are free)."""
    from aggregator.devnet_cli import DevnetCommandError, down

    try:
        stopped = down()
    except DevnetCommandError as exc:
        _devnet_fail(exc)
    console.print("devnet stopped" if stopped else "no devnet was running")


def _register_commands() -> None:
    from aggregator import api_cli, automation_cli, backtest_cli, store_cli
    from aggregator.whatif_cli import register as register_whatif

    backtest_cli.register(app, _settings, _store, _address)
    automation_cli.register(app, _settings, _store, _address)
    api_cli.register(app, _settings, _store)
    store_cli.register(app, _settings, _store)
    register_whatif(app, _settings, _store, _address)


_register_commands()


def main() -> None:
    """Console-script entry point. An error no command expected (a store that cannot be read, a bug) is said in
    one line on stderr with exit code 1; ``-v`` logs its trace."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # the last line of defence: no Python traceback reaches a user
        logging.getLogger("xmargin").debug("unexpected error", exc_info=True)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(text[:500])}", soft_wrap=True)
        sys.exit(1)
