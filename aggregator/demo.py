"""``xmargin demo`` / ``make demo``: the main job on embedded defaults.

Boots a private devnet (every venue from its own published packages), opens the demo positions, tracks the
demo wallets in the embedded SQLite store, serves the API and the dashboard, then runs sync cycles — moving
the WETH price along a scripted path between them — and prints every wallet's health as it changes, each
cycle ending with the dashboard's URL. Each cycle is a full read of the six wallets (``sync_mode = "cycle"``),
so every health a venue reports itself is checked against that figure at that block; ``xmargin run`` follows
blocks by default, where only the wallets a block's logs name are read (and so checked) and the others are
recomputed from their cached state. ``cycles`` stops it (exit 0); without it, it runs until Ctrl-C.
"""

from __future__ import annotations

import math
import time
from itertools import count

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

import devnet
from aggregator.api.app import create_app, trusted_hosts
from aggregator.api.server import ApiServer, ServerStartError
from aggregator.config import Settings, load_settings
from aggregator.devnet_cli import StageDisplay, devnet_settings
from aggregator.metrics import Metrics
from aggregator.pipeline import Syncer
from aggregator.render import check_text, has_exposure, health_style
from aggregator.views import VenueHealth
from db.store import Store
from devnet.venues import chain_parts

__all__ = ["price_path", "run_demo"]

START_WETH_USD = 4_000.0


def price_path(cycle: int) -> float:
    """WETH price before sync ``cycle`` (0-based): a 7 % dip and recovery over 12 cycles, then repeat.

    The dip takes the ``near_liquidation`` wallet below a health factor of 1 around cycle 3.
    """
    return round(START_WETH_USD * (1 - 0.07 * math.sin(2 * math.pi * cycle / 12)), 2)


def _changes_table(
    cycle: int, block: int | None, weth_usd: float, healths: list[VenueHealth],
    previous: dict[tuple[str, str], float | None], labels: dict[str, str],
) -> Table:
    table = Table(title=f"cycle {cycle + 1} · block {block} · WETH ${weth_usd:,.2f}", title_justify="left")
    for col in ("wallet", "venue", "HF", "ΔHF", "coll $", "debt $", "check"):
        table.add_column(col, justify="left" if col in ("wallet", "venue") else "right", no_wrap=True)
    for h in filter(has_exposure, healths):
        key = (h.wallet, h.venue)
        hf = h.health_factor
        before = previous.get(key)
        change = Text("")
        if hf is not None and before is not None:
            delta = hf - before
            change = Text(f"{delta:+.4f}" if abs(delta) >= 5e-5 else "·",
                          style="red" if delta <= -5e-5 else "green" if delta >= 5e-5 else "")
        if h.kind == "lp":
            hf_text = Text("– (LP)", style="dim")  # a liquidity range is never liquidated
        else:
            hf_text = Text("∞" if hf is None else f"{hf:.4f}", style=health_style(hf))
        if hf is not None and hf < 1:
            hf_text.append(" LIQ", style="bold red")
        table.add_row(
            labels.get(h.wallet, h.wallet[:10]), h.venue, hf_text, change,
            f"{h.collateral_usd:,.0f}", f"{h.debt_usd:,.0f}",
            check_text(h),
        )
    return table


def _print_unified(console: Console, store: Store, seeded: list[devnet.SeedWallet], stale_after_s: float) -> None:
    """Each wallet's one-line answer (lowest venue health, unified health, first liquidation), and for the wallets
    on several venues the netting engine's margin against the venue-by-venue one, as stored with this sync."""
    from aggregator.documents import health_view

    for w in seeded:
        doc = health_view(store, w.address, stale_after_s=stale_after_s)
        if not doc["venues"]:
            continue
        console.print(Text.assemble((f"  {w.label}: ", "bold"), doc["summary"]["text"]))
        risk = store.latest_risk(w.address)
        if risk is None or len(risk.document.get("venue_margins_usd", {})) < 2:
            continue
        uh = risk.unified_health
        console.print(
            f"  {w.label}: unified health {'∞' if uh is None else f'{uh:.2f}'} · portfolio margin "
            f"${risk.margin_usd:,.0f} vs ${risk.document.get('sum_of_venue_margins_usd', 0):,.0f} venue by venue "
            f"(netting benefit ${risk.netting_benefit_usd:,.0f})"
        )


def run_demo(console: Console, cycles: int | None = None, interval_s: float = 2.0) -> int:
    """Run the demo; returns the process exit code.

    Every slow stage (the first run's npm install, compile and deployment; the start; the seeding) shows as it
    runs (:class:`aggregator.devnet_cli.StageDisplay`: a live line per stage in a terminal, one plain line per
    stage otherwise).
    """
    dn = devnet.Devnet()
    try:
        with StageDisplay(console) as progress:
            dn.start(progress=progress)
        how = "deployed and cached for next time" if dn.deployed else "from the cached chain state"
        console.print(f"devnet ready in {dn.startup_s:.1f} s ({how})")
        _cycles(console, dn.info, cycles, interval_s)
    except KeyboardInterrupt:
        console.print("stopped")
    except (devnet.DevnetError, devnet.InstallError, devnet.DeployError) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}")
        return 1
    finally:
        dn.stop()
    return 0


def _cycles(console: Console, info: devnet.DevnetInfo, cycles: int | None, interval_s: float) -> None:
    if not console.is_terminal:
        console.width = max(console.width, 110)  # piped output: room for every venue's column
    banners = "".join(f"; {part.banner(info)}" for part in chain_parts() if part.banner is not None)
    console.print(f"devnet at {info.rpc_url}, chain {info.chain_id}{banners}")
    with StageDisplay(console) as progress:
        seeded = [w for w in devnet.seed(info, progress) if w.label != "lender"]
    settings = devnet_settings(info, load_settings())
    labels = {w.address: w.label for w in seeded}
    with Store.open(settings.db_url) as store, Syncer(settings, store) as syncer:
        store.add_wallets([(w.address, w.label) for w in seeded])
        console.print(f"store: {store.url}")
        for w in seeded:
            console.print(f"  tracking {w.address}  {w.label}")
        metrics = Metrics(store)
        metrics.watch_rpc(syncer.rpc_stats, syncer.rpc_endpoints)
        server = _serve(console, settings, store, metrics)
        hedged = next((w.address for w in seeded if w.label == "hedged"), seeded[0].address)
        try:
            _loop(console, info, cycles, interval_s, store, syncer, seeded, labels, metrics,
                  f"{server.url}/ui/wallet/{hedged}")
        finally:
            server.stop()


def _serve(console: Console, settings: Settings, store: Store, metrics: Metrics) -> ApiServer:
    """The API and dashboard on the configured port, or any free one when it is taken."""
    app = create_app(store, public_reads=settings.api.public_reads, metrics=metrics,
                     allowed_hosts=trusted_hosts(settings.api.host), stale_after_s=settings.stale_bound_s)
    try:
        server = ApiServer(app, settings.api.host, settings.api.port).start()
    except ServerStartError:
        server = ApiServer(app, settings.api.host, 0).start()
    console.print(f"dashboard: {server.url}/ui/  (API {server.url}/v1, schema {server.url}/openapi.json)",
                  soft_wrap=True)
    return server


def _loop(
    console: Console, info: devnet.DevnetInfo, cycles: int | None, interval_s: float, store: Store, syncer: Syncer,
    seeded: list[devnet.SeedWallet], labels: dict[str, str], metrics: Metrics, dashboard_url: str,
) -> None:
    order = list(labels)
    previous: dict[tuple[str, str], float | None] = {}
    for cycle in count():
        if cycles is not None and cycle >= cycles:
            return
        weth = price_path(cycle)
        devnet.set_price(info, "WETH", weth)
        report = syncer.run(wallets=order)
        metrics.observe_sync(report)
        blocks = [b.block.number for b in report.batches if b.block]
        healths = sorted(report.healths(), key=lambda h: order.index(h.wallet))
        console.print(_changes_table(cycle, max(blocks, default=None), weth, healths, previous, labels))
        for b in report.batches:
            if b.error:
                console.print(f"[yellow]{b.chain}: {b.status}: {b.error}")
        previous = {(h.wallet, h.venue): h.health_factor for h in healths}
        _print_unified(console, store, seeded, syncer.settings.stale_bound_s)
        console.print(f"dashboard: {dashboard_url}", soft_wrap=True)
        if cycles is None or cycle + 1 < cycles:
            time.sleep(interval_s)
