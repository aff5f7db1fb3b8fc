"""The dashboard in a real browser (headless Chromium driven by Playwright) against the API served by uvicorn and
a store synced from the devnet: the hedged wallet's page shows exactly the API's numbers, at the precision it
prints them; moving the devnet's WETH price and syncing again, the page redraws itself with the new block's
numbers; the P&L heatmap and the health history are drawn; the wallet list links to every tracked wallet; no
console error on the way. Screenshots are kept under ``tests/artifacts/`` (``$XMARGIN_ARTIFACTS`` overrides).

The browser is Debian's ``chromium`` at ``/usr/bin/chromium`` (``make browser`` installs it); Playwright's own
browser downloads are not used.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

import devnet
from aggregator.alerts.engine import AlertEngine
from aggregator.api.app import create_app
from aggregator.api.server import ApiServer
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import Syncer
from db import RiskRow, Store
from tests.db import db_testdata as td

HEDGED = devnet.wallet_address("hedged")
CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 20_000
REFRESH_S = 0.3
"""The pages' poll interval in these tests (``?refresh=``), so a new sync shows within a second."""


def artifacts_dir() -> Path:
    path = Path(os.environ.get("XMARGIN_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------- the API + dashboard, served by uvicorn in a thread ----------


def dashboard_app(store: Store) -> FastAPI:
    return create_app(store)  # the dashboard is mounted by create_app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` on a loopback port in a thread; yields its base URL."""
    with ApiServer(app) as server:
        yield server.url


def test_dashboard_routes_serve_the_pages_and_stay_out_of_the_schema(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store, serve(dashboard_app(store)) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        root = client.get("/")
        assert root.is_redirect
        assert root.headers["location"] == "/ui/"
        listing = client.get("/ui/")
        assert listing.status_code == 200
        assert listing.headers["content-type"].startswith("text/html")
        assert "/ui/static/wallets.js" in listing.text
        page = client.get(f"/ui/wallet/{HEDGED}")
        assert page.status_code == 200
        assert "/ui/static/wallet.js" in page.text
        for asset, kind in (("wallet.js", "javascript"), ("common.js", "javascript"), ("charts.js", "javascript"),
                            ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")):
            resp = client.get(f"/ui/static/{asset}")
            assert resp.status_code == 200, asset
            assert kind in resp.headers["content-type"], asset
        # Every asset is local: no URL on the pages or in the scripts but the SVG namespace's.
        for text in (listing.text, page.text, *(client.get(f"/ui/static/{a}").text
                                               for a in ("wallet.js", "wallets.js", "common.js", "charts.js"))):
            assert not re.findall(r"(?:https?:)?//(?!www\.w3\.org/2000/svg)[\w.-]+\.\w+/", text)
        assert client.get("/ui/static/nope.js").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
        assert not [p for p in paths if p == "/" or p.startswith("/ui")]


# ---------- devnet, store, browser ----------


@pytest.fixture(scope="module")
def seeded(seeded_devnet: devnet.DevnetInfo) -> tuple[devnet.DevnetInfo, list[tuple[str, str]]]:
    """The shared seeded devnet and its seeded wallets (seeding a seeded devnet only lists them)."""
    return seeded_devnet, [(w.address, w.label) for w in devnet.seed(seeded_devnet)]


@dataclass
class Env:
    info: devnet.DevnetInfo
    syncer: Syncer
    url: str
    api: httpx.Client
    db_url: str

    def sync(self) -> None:
        report = self.syncer.run()
        assert report.ok, [b.error for b in report.batches]

    def alerts(self) -> list[dict[str, Any]]:
        """Evaluate the alert rules on what the last sync stored; the hedged wallet's alerts from the API."""
        AlertEngine(self.syncer.store, []).evaluate()
        items: list[dict[str, Any]] = self.get(f"/v1/wallets/{HEDGED}/alerts")["items"]
        return items

    def get(self, path: str) -> Any:
        resp = self.api.get(path)
        assert resp.status_code == 200, (path, resp.text)
        return resp.json()


@pytest.fixture
def env(seeded: tuple[devnet.DevnetInfo, list[tuple[str, str]]], tmp_path: Path) -> Iterator[Env]:
    """The seeded devnet (reverted afterwards), a SQLite store tracking every seeded wallet, the syncer writing
    it and the API + dashboard reading it (two stores on one file, as ``xmargin run`` and the server would)."""
    info, wallets = seeded
    snap = devnet.snapshot(info)
    url = f"sqlite:///{tmp_path / 'xmargin.db'}"
    try:
        with Store.open(url) as writer, Store.open(url) as reader, Syncer(devnet_settings(info), writer) as syncer:
            writer.add_wallets(wallets)
            with serve(dashboard_app(reader)) as base, httpx.Client(base_url=base, timeout=30) as api:
                yield Env(info, syncer, base, api, url)
    finally:
        devnet.revert(info, snap)
        devnet.set_price(info, "WETH", 4_000)  # the perp API's marks are not in the chain's snapshot


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `make browser` installs it (Debian's chromium "
                    "package); the dashboard's browser test needs it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of a page."""

    errors: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Console]]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    console = Console()

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            console.errors.append(f"{msg.text} @ {msg.location.get('url', '')}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
    yield pg, console
    context.close()


# ---------- reading the page ----------

NUMBERS_JS = """() => {
  const out = {};
  for (const el of document.querySelectorAll('[data-testid]')) {
    (out[el.dataset.testid] ||= []).push({value: el.dataset.value ?? null, text: el.textContent,
                                         points: el.dataset.points ?? null});
  }
  return out;
}"""


def shown(text: str) -> tuple[float | None, int]:
    """A displayed number and its decimals: ``$72,000.00`` → (72000.0, 2), ``↓ 32.66%`` → (0.3266, 4),
    ``−$1.5`` → (-1.5, 1), ``∞`` → (None, 0)."""
    t = text.strip()
    if t == "∞":
        return None, 0
    percent = t.endswith("%")
    t = re.sub(r"[$,%+↓↑\s]", "", t).replace("\u2212", "-")
    assert re.fullmatch(r"-?\d+(\.\d+)?", t), f"not a number as displayed: {text!r}"
    decimals = len(t.split(".")[1]) if "." in t else 0
    value = float(t)
    return (value / 100, decimals + 2) if percent else (value, decimals)


class Shown:
    """Every ``data-testid`` element of the page at one moment."""

    def __init__(self, page: Page) -> None:
        self.items: dict[str, list[dict[str, str | None]]] = page.evaluate(NUMBERS_JS)

    def one(self, testid: str) -> dict[str, str | None]:
        found = self.items.get(testid, [])
        assert len(found) == 1, f"{testid}: {len(found)} elements on the page"
        return found[0]

    def value(self, testid: str) -> float | None:
        raw = self.one(testid)["value"]
        assert raw is not None, f"{testid} has no data-value"
        return None if raw == "null" else float(raw)

    def check(self, testid: str, expected: float | None) -> None:
        """data-value is the API's number, and the text shows it correctly rounded."""
        raw = self.value(testid)
        text = self.one(testid)["text"] or ""
        if expected is None:
            assert raw is None, f"{testid}: shows {raw}, the API has null"
            return
        assert raw == expected, f"{testid}: data-value {raw} != API {expected}"
        number, decimals = shown(text)
        assert number is not None, f"{testid}: shows {text!r} for {expected}"
        assert abs(number - expected) <= 0.5 * 10**-decimals + 1e-12 * abs(expected), (
            f"{testid}: shows {text!r}, the API has {expected}")

    def count(self, prefix: str) -> int:
        return sum(len(v) for k, v in self.items.items() if k.startswith(prefix))


def wait_for_block(page: Page, block: int) -> None:
    page.wait_for_function("b => document.body.dataset.block === b", arg=str(block), timeout=WAIT_MS)


def check_wallet_page(page: Page, env: Env, health: dict[str, Any], risk: dict[str, Any]) -> Shown:
    """The page shows the health document's and the risk document's numbers, and draws the grid and history."""
    shown_now = Shown(page)
    assert shown_now.value("block") == health["block"]
    shown_now.check("unified-health", risk["unified_health"])
    shown_now.check("equity-usd", risk["equity_usd"])
    shown_now.check("portfolio-margin-usd", risk["portfolio_margin_usd"])
    shown_now.check("sum-venue-margins-usd", risk["sum_of_venue_margins_usd"])
    shown_now.check("netting-benefit-usd", risk["netting_benefit_usd"])
    shown_now.check("first-liq-down", risk["first_liquidation"]["down"]["move"])
    shown_now.check("first-liq-up", risk["first_liquidation"]["up"]["move"])
    shown_now.check("var-1d-99", risk["var_es"]["1d"]["0.99"]["var_usd"])
    for v in health["venues"]:
        name = v["venue"]
        shown_now.check(f"venue-hf-{name}", v["health_factor"])
        shown_now.check(f"venue-collateral-{name}", v["collateral_usd"])
        shown_now.check(f"venue-debt-{name}", v["debt_usd"])
        status = shown_now.one(f"venue-status-{name}")
        assert status["value"] == v["status"]
        # The badge says "ok" only for fresh data (stale data shows "stale", never a green "ok").
        assert status["text"] == (v["status"] if not page_is_stale(page) or v["status"] == "error" else "stale")
        for coin, px in (v.get("liquidation_price") or {}).items():
            shown_now.check(f"venue-liq-{name}-{coin}", px)
    assert shown_now.count("venue-hf-") == len(health["venues"])
    drawn_order = page.evaluate("() => [...document.querySelectorAll('#venues article.venue')]"
                                ".map(a => a.dataset.testid.slice('venue-'.length))")
    assert drawn_order == [v["venue"] for v in sorted(health["venues"], key=venue_rank)], "riskiest first"
    for p in risk["liquidation_prices"]:
        shown_now.check(f"liq-price-{p['venue']}-{p['asset']}", p["price_usd"])
        shown_now.check(f"liq-current-{p['venue']}-{p['asset']}", p["current_price_usd"])
    assert shown_now.count("liq-price-") == len(risk["liquidation_prices"])
    for asset, usd in risk["net_exposure_usd"].items():
        shown_now.check(f"exposure-{asset}", usd)
    assert shown_now.count("exposure-") == len(risk["net_exposure_usd"])

    check_heatmap(page, shown_now, risk)

    history = env.get(f"/v1/wallets/{HEDGED}/history?limit=1000")
    points = [i for i in history["items"] if i["health_factor"] is not None]
    chart = shown_now.one("history-chart")
    assert chart["points"] == str(len(points))
    for i in points:
        assert shown_now.value(f"history-point-{i['venue']}-{i['block']}") == i["health_factor"]
    assert history["net_worth"], "the history serves net worth"
    for nw in history["net_worth"]:
        assert shown_now.value(f"networth-point-{nw['block']}") == nw["net_worth_usd"]
    assert shown_now.count("networth-point-") == len(history["net_worth"])
    check_headline(shown_now, health, risk)
    check_positions(shown_now, health)
    return shown_now


def page_is_stale(page: Page) -> bool:
    return bool(page.evaluate("() => document.body.dataset.stale === '1'"))


def check_heatmap(page: Page, shown_now: Shown, risk: dict[str, Any]) -> None:
    """Every drawn cell is the API's P&L; volatility rows are dropped only when they change nothing (no options),
    and price columns only on a narrow screen."""
    grid = risk["pnl_grid"]
    n_vol, n_price = len(grid["vol_shifts"]), len(grid["price_moves"])
    assert len(grid["pnl_usd"]) == n_vol
    heat = page.get_by_test_id("pnl-heatmap")
    rows, cols = int(heat.get_attribute("data-rows") or 0), int(heat.get_attribute("data-cols") or 0)
    drawn = [tuple(int(x) for x in k.removeprefix("grid-cell-").split("-")) for k in shown_now.items
             if k.startswith("grid-cell-")]
    assert len(drawn) == rows * cols == shown_now.count("grid-cell-")
    for vi, pi in drawn:
        assert shown_now.value(f"grid-cell-{vi}-{pi}") == grid["pnl_usd"][vi][pi]
    if rows < n_vol:  # one row stands for all: every row is the same (the book holds no options)
        assert rows == 1
        assert all(row == grid["pnl_usd"][0] for row in grid["pnl_usd"])
        assert heat.get_attribute("data-collapsed") == "1"
    viewport = page.viewport_size
    if cols < n_price:
        assert viewport is not None
        assert viewport["width"] < 800, "every price move is drawn on a wide screen"
    zero = grid["price_moves"].index(0.0)
    assert (drawn[0][0], zero) in drawn, "the no-move column is always drawn"
    liquidating = [(vi, pi) for vi, pi in drawn if grid["liquidated"][vi][pi]]
    assert liquidating, "a ±50 % move liquidates some venue of the hedged wallet"
    assert page.locator(".heatmap .liq-mark").count() == len(liquidating)
    moved = page.get_by_test_id("heatmap-moved").inner_text()
    expected = grid.get("moved") or [u for u in grid["underlyings"] if abs(risk["net_exposure_usd"].get(u, 0)) > 0.005]
    for name in ([expected] if isinstance(expected, str) else expected):
        assert name in moved, (name, moved)
    for code in ("BREAK", "proxy:"):
        assert code not in page.locator("#unified-card").inner_text(), "codes are put in words"


def expected_headline(health: dict[str, Any], risk: dict[str, Any] | None
                      ) -> tuple[dict[str, Any] | None, float | None, dict[str, Any] | None]:
    """(lowest venue, unified health, first liquidation) as the pages must lead with them: the server's summary when
    it sends one, else computed from the documents as the contract defines them."""
    summary = health.get("summary") or (risk or {}).get("summary")
    if summary:
        liq = summary.get("first_liquidation")
        return summary.get("lowest_venue"), summary.get("unified_health"), liq
    venues = [v for v in health["venues"] if v["health_factor"] is not None]
    low = min(venues, key=lambda v: v["health_factor"]) if venues else None
    lowest = {"venue": low["venue"], "health_factor": low["health_factor"]} if low else None
    unified = risk["unified_health"] if risk else None
    nearest = ((risk or {}).get("first_liquidation") or {}).get("nearest")
    candidates = [nearest] if nearest else (risk or {}).get("liquidation_prices", [])
    best = None
    for c in candidates:
        move = c.get("move", c["price_usd"] / c["current_price_usd"] - 1)
        if best is None or abs(move) < abs(best["move"]):
            best = {**c, "move": move}
    return lowest, unified, best


def check_headline(shown_now: Shown, health: dict[str, Any], risk: dict[str, Any] | None,
                   prefix: str = "headline") -> None:
    lowest, unified, liq = expected_headline(health, risk)
    if lowest is None:
        assert shown_now.value(f"{prefix}-lowest") is None
    else:
        shown_now.check(f"{prefix}-lowest", lowest["health_factor"])
        assert shown_now.one(f"{prefix}-lowest-venue")["text"] == lowest["venue"]
    shown_now.check(f"{prefix}-unified", unified)
    if liq is None:
        assert "no single price move" in (shown_now.one(f"{prefix}-liq-venue")["text"] or "")
        return
    assert shown_now.one(f"{prefix}-liq-venue")["text"] == liq["venue"]
    assert shown_now.one(f"{prefix}-liq-asset")["text"] == liq["asset"]
    if liq.get("common_move"):  # every risky price together: a move, no single price
        assert shown_now.count(f"{prefix}-liq-price") == 0
    else:
        shown_now.check(f"{prefix}-liq-price", liq["price_usd"])
    shown_now.check(f"{prefix}-liq-move", liq["move"])
    tip = shown_now.one(f"{prefix}-unified-tip")
    assert tip is not None


def venue_rank(v: dict[str, Any]) -> tuple[int, float, str]:
    """Riskiest first, as the server ranks venues: no reading, then by health factor, then no debt, LPs last."""
    if v["status"] == "error":
        return (0, 0.0, v["venue"])
    if v["health_factor"] is not None:
        return (1, v["health_factor"], v["venue"])
    return (3 if v["kind"] == "lp" else 2, 0.0, v["venue"])


def position_keys(health: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(test-id key, venue, positions) per card, in the page's order: venues riskiest first, an LP NFT's legs
    together."""
    order = sorted(health["venues"], key=venue_rank)
    out: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
    seen: dict[str, int] = {}

    def unique(key: str) -> str:
        seen[key] = seen.get(key, 0) + 1
        return key if seen[key] == 1 else f"{key}-{seen[key]}"

    for v in order:
        nfts: dict[str, list[dict[str, Any]]] = {}
        for p in v["positions"]:
            if p["side"] == "lp":
                nfts.setdefault(str(p["detail"]["token_id"]), []).append(p)
            else:
                out.append((unique(f"{v['venue']}-{p['asset']}-{p['side']}"), v, [p]))
        out += [(unique(f"{v['venue']}-{token}"), v, legs) for token, legs in nfts.items()]
    return out


def check_positions(shown_now: Shown, health: dict[str, Any]) -> dict[str, int]:
    """What traders expect per position, beside it, equal to the API's detail: perp entry, mark, leverage, P&L and
    liquidation price; LP range bounds, pool price, in/out of range, fees owed; lending max withdrawal, LTV and
    borrowing room. Returns how many of each kind were checked."""
    counted = {"perp": 0, "lp": 0, "lending": 0}
    for key, v, legs in position_keys(health):
        p = legs[0]
        d = p.get("detail") or {}
        if v["kind"] == "perp":
            shown_now.check(f"pos-{key}-entry", float(d["entry_px"]))
            shown_now.check(f"pos-{key}-mark", d["mark_px"])
            shown_now.check(f"pos-{key}-pnl", float(d["unrealized_pnl_usd"]))
            shown_now.check(f"pos-{key}-leverage", d["effective_leverage"])
            shown_now.check(f"pos-{key}-liq", d["liquidation_px"])
            shown_now.check(f"pos-{key}-size", abs(p["amount"]))
            counted["perp"] += 1
        elif v["kind"] == "lp":
            shown_now.check(f"pos-{key}-range-lower", d["range_lower"])
            shown_now.check(f"pos-{key}-range-upper", d["range_upper"])
            shown_now.check(f"pos-{key}-range-price", d["range_price"])
            assert shown_now.one(f"pos-{key}-in-range")["value"] == str(d["in_range"]).lower()
            for leg in legs:
                shown_now.check(f"pos-{key}-fees-usd-{leg['asset']}", leg["detail"]["fees_usd"])
                shown_now.check(f"pos-{key}-amount-{leg['asset']}", leg["amount"])
            counted["lp"] += 1
        else:
            shown_now.check(f"pos-{key}-amount", p["amount"])
            shown_now.check(f"pos-{key}-value", p["value_usd"])
            if "max_withdraw" in d:
                shown_now.check(f"pos-{key}-max-withdraw", d["max_withdraw"])
                shown_now.check(f"pos-{key}-max-withdraw-usd", d["max_withdraw_usd"])
            if p["side"] == "collateral" and "ltv_bps" in d:
                shown_now.check(f"pos-{key}-ltv", d["ltv_bps"] / 1e4)
            if p["side"] == "debt" and "available_borrow" in d:
                shown_now.check(f"pos-{key}-available-borrow", d["available_borrow"])
            elif p["side"] == "debt" and "available_borrows_usd" in d:
                shown_now.check(f"pos-{key}-available-borrow-usd", d["available_borrows_usd"])
            counted["lending"] += 1
    return counted


# ---------- the tests ----------

@pytest.mark.chain
def test_wallet_page_shows_the_apis_numbers_and_follows_a_price_move(
    env: Env, page: tuple[Page, Console]
) -> None:
    pg, console = page
    env.syncer.store.add_rule(HEDGED, "venue_health_below", {"venue": "aave_v3", "threshold": 1.5},
                              severity="critical", now=datetime.now(UTC))
    env.sync()
    assert env.alerts() == []
    health = env.get(f"/v1/wallets/{HEDGED}/health")
    risk = env.get(f"/v1/wallets/{HEDGED}/risk")
    assert {v["venue"] for v in health["venues"]} >= {"aave_v3", "morpho_blue", "uniswap_v3", "hyperliquid", "dydx_v4"}

    pg.goto(f"{env.url}/ui/wallet/{HEDGED}?refresh={REFRESH_S}")
    wait_for_block(pg, health["block"])
    before = check_wallet_page(pg, env, health, risk)
    assert pg.get_by_test_id("wallet-label").inner_text() == "hedged"
    assert re.fullmatch(r"synced \d+ s ago", pg.get_by_test_id("updated").inner_text())
    assert pg.locator("#live-dot.on").count() == 1  # green: fresh data, reachable API
    assert pg.get_by_test_id("alerts-empty").is_visible()
    pg.screenshot(path=str(artifacts_dir() / "dashboard-wallet-before.png"), full_page=True)

    # The price moves on every venue of the devnet; the next sync lands; the open page redraws by itself.
    devnet.set_price(env.info, "WETH", 3_400)
    env.sync()
    moved = env.get(f"/v1/wallets/{HEDGED}/health")
    moved_risk = env.get(f"/v1/wallets/{HEDGED}/risk")
    assert moved["block"] > health["block"]
    wait_for_block(pg, moved["block"])
    after = check_wallet_page(pg, env, moved, moved_risk)
    for venue in ("aave_v3", "morpho_blue", "hyperliquid", "dydx_v4"):
        assert after.value(f"venue-hf-{venue}") != before.value(f"venue-hf-{venue}"), venue
    assert after.value("venue-hf-aave_v3") < before.value("venue-hf-aave_v3")  # type: ignore[operator]
    assert after.value("unified-health") != before.value("unified-health")
    assert int(after.one("history-chart")["points"] or 0) >= 2 * 4  # two blocks of four venues with a health factor
    # The alert rules run after the sync (as in `xmargin run`): the page shows the alert when it is stored.
    (alert,) = env.alerts()
    assert alert["value"] == after.value("venue-hf-aave_v3")
    pg.get_by_test_id(f"alert-{alert['id']}").wait_for()
    alerts_shown = Shown(pg)
    alerts_shown.check(f"alert-value-{alert['id']}", alert["value"])
    alerts_shown.check(f"alert-threshold-{alert['id']}", alert["threshold"])
    assert alert["message"] in pg.get_by_test_id(f"alert-{alert['id']}").inner_text()
    pg.screenshot(path=str(artifacts_dir() / "dashboard-wallet-after.png"), full_page=True)

    assert not console.errors, console.errors


@pytest.mark.chain
def test_wallet_list_links_to_every_tracked_wallet(env: Env, page: tuple[Page, Console]) -> None:
    pg, console = page
    env.sync()
    wallets = env.get("/v1/wallets")
    assert len(wallets) >= 6
    pg.goto(f"{env.url}/?refresh={REFRESH_S}")  # / redirects to the list
    pg.wait_for_function("() => document.body.dataset.loaded === '1'", timeout=WAIT_MS)
    assert pg.url.startswith(f"{env.url}/ui/?")
    links = pg.locator("a[data-testid^='wallet-link-']")
    hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
    assert hrefs == {f"/ui/wallet/{w['address']}" for w in wallets}
    health = env.get(f"/v1/wallets/{HEDGED}/health")
    risk = env.get(f"/v1/wallets/{HEDGED}/risk")
    listed = Shown(pg)
    listed.check(f"wallet-unified-{HEDGED}", risk["unified_health"])
    lowest = min(v["health_factor"] for v in health["venues"] if v["health_factor"] is not None)
    listed.check(f"wallet-minhf-{HEDGED}", lowest)
    assert listed.value(f"wallet-block-{HEDGED}") == health["block"]
    pg.screenshot(path=str(artifacts_dir() / "dashboard-wallets.png"), full_page=True)

    # The list re-renders at every poll by patching what it shows: the link a click is aimed at stays the same node
    # (a replaced one lost the click when the poll landed between mouse down and up); a property set on it survives.
    link = f"[data-testid='wallet-link-{HEDGED}']"
    renders = pg.evaluate(f"() => {{ document.querySelector(\"{link}\").marked = '1'; "
                          "return Number(document.body.dataset.renders); }")
    pg.wait_for_function("n => Number(document.body.dataset.renders) >= n + 2", arg=renders, timeout=WAIT_MS)
    assert pg.evaluate(f"() => document.querySelector(\"{link}\").marked") == "1"

    pg.get_by_test_id(f"wallet-link-{HEDGED}").click()
    # the list page shows the same block: wait for the wallet page itself (under load the click's navigation was
    # still under way when the block matched, and the URL was the list's)
    pg.wait_for_url(f"**/ui/wallet/{HEDGED}", timeout=WAIT_MS)
    wait_for_block(pg, health["block"])
    assert pg.url.endswith(f"/ui/wallet/{HEDGED}")
    assert not console.errors, console.errors


@pytest.mark.chain
def test_a_wallet_without_data_says_so(env: Env, page: tuple[Page, Console]) -> None:
    """Before the first sync the page says there is no data yet (and keeps polling); an address that is not
    tracked is named as such."""
    pg, console = page
    pg.goto(f"{env.url}/ui/wallet/{HEDGED}?refresh={REFRESH_S}")
    banner = pg.locator("#banner")
    banner.wait_for(state="visible")
    assert "no snapshot" in banner.inner_text()  # "… has no snapshot (on the current chain) yet"
    env.sync()
    wait_for_block(pg, env.get(f"/v1/wallets/{HEDGED}/health")["block"])
    assert banner.is_hidden()
    # The API goes away for a while: the page says so, keeps what it drew, and recovers by itself.
    pg.route("**/v1/**", lambda route: route.abort())
    banner.wait_for(state="visible")
    assert "cannot reach" in banner.inner_text()
    assert pg.get_by_test_id("venue-hf-aave_v3").is_visible()
    pg.unroute("**/v1/**")
    banner.wait_for(state="hidden")
    stranger = "0x0000000000000000000000000000000000000001"
    pg.goto(f"{env.url}/ui/wallet/{stranger}?refresh={REFRESH_S}")
    banner.wait_for(state="visible")
    assert "not tracked" in banner.inner_text()
    # The failed loads are what this test is about: Chromium's console reports each of them.
    unexpected = [e for e in console.errors if "404" not in e and "net::ERR_FAILED" not in e]
    assert not unexpected, unexpected


@pytest.mark.chain
def test_an_api_that_needs_a_key_gets_it_from_the_page(env: Env, page: tuple[Page, Console]) -> None:
    """Reads behind API keys: the page asks for a key, keeps it in local storage and sends it as a bearer token."""
    pg, console = page
    env.sync()
    block = env.get(f"/v1/wallets/{HEDGED}/health")["block"]
    with Store.open(env.db_url) as store, serve(create_app(store, public_reads=False)) as url:
        _, key = store.create_api_key("dashboard-test", now=datetime.now(UTC))
        pg.goto(f"{url}/ui/wallet/{HEDGED}?refresh={REFRESH_S}")
        pg.locator("#auth").wait_for(state="visible")
        # The banner's text follows the form's showing in the same render; on a loaded machine the two may land
        # in separate frames, so its text is awaited (Playwright retries the assertion until its timeout).
        expect(pg.locator("#banner")).to_contain_text("needs a key")
        pg.get_by_label("API key").fill(key)
        pg.get_by_role("button", name="Use key").click()
        wait_for_block(pg, block)
        assert pg.evaluate("() => sessionStorage.getItem('xmargin.apiKey')") == key
        assert pg.locator("#auth").is_hidden()
        assert pg.get_by_test_id("wallet-label").inner_text() == "hedged"
    unexpected = [e for e in console.errors if "401" not in e]
    assert not unexpected, unexpected


@pytest.mark.chain
def test_a_401_answered_after_the_key_was_entered_does_not_ask_again(env: Env, page: tuple[Page, Console]) -> None:
    """The race behind a flaky run: a poll sent without a key is still in flight when the key is entered; its late 401
    must not bring the key form back over the data the key then reads. Requests without a key are held here until
    the key is in, so the race happens every time."""
    pg, _console = page
    env.sync()
    block = env.get(f"/v1/wallets/{HEDGED}/health")["block"]
    held: list[Any] = []
    with Store.open(env.db_url) as store, serve(create_app(store, public_reads=False)) as url:
        _, key = store.create_api_key("dashboard-race", now=datetime.now(UTC))
        pg.route("**/v1/**", lambda route: route.continue_() if "authorization" in route.request.headers
                 else held.append(route))
        pg.goto(f"{url}/ui/wallet/{HEDGED}?refresh={REFRESH_S}")

        def release() -> None:
            while held:
                held.pop(0).continue_()

        def wait_held() -> None:
            for _ in range(200):
                if held:
                    return
                pg.wait_for_timeout(25)
            raise AssertionError("no request without a key was sent")

        wait_held()
        release()  # the first poll's 401: the form shows
        pg.locator("#auth").wait_for(state="visible")
        wait_held()  # the next poll, sent without a key, is in flight
        pg.get_by_label("API key").fill(key)
        pg.get_by_role("button", name="Use key").click()
        release()  # its 401 lands after the key was entered
        wait_for_block(pg, block)
        pg.wait_for_timeout(3 * REFRESH_S * 1000)  # a few polls more, all with the key
        assert pg.locator("#auth").is_hidden()
        assert not held


def test_shown_parses_what_the_pages_print() -> None:
    assert shown("$72,000.00") == (72_000.0, 2)
    assert shown("\u2212$53,109.06") == (-53_109.06, 2)
    assert shown("+$45,972.23") == (45_972.23, 2)
    value, decimals = shown("↓ 32.66%")
    assert value == pytest.approx(0.3266)
    assert decimals == 4
    assert shown("1.4850") == (1.485, 4)
    assert shown("∞") == (None, 0)
    with pytest.raises(AssertionError):
        shown("n/a")


@pytest.mark.chain
def test_a_sparse_risk_document_draws_without_errors(tmp_path: Path, page: tuple[Page, Console]) -> None:
    """A risk document from before the P&L grid (and with little else) still draws: "no grid", no exception."""
    pg, console = page
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        wallets = td.setup(store, 1)
        risk = RiskRow(wallet=wallets[0], block_number=100, computed_at=datetime.now(UTC), unified_health=1.7,
                       equity_usd=10_000.0, margin_usd=2_000.0, netting_benefit_usd=500.0,
                       document={"wallet": wallets[0], "block": 100, "unified_health": 1.7, "first_liquidation": {}})
        store.write_sync(dataclasses.replace(td.batch(wallets, 100), risks=(risk,)))
        with serve(dashboard_app(store)) as url:
            pg.goto(f"{url}/ui/wallet/{wallets[0]}?refresh={REFRESH_S}")
            wait_for_block(pg, 100)
            assert pg.get_by_test_id("heatmap-empty").inner_text() == "no grid"
            Shown(pg).check("unified-health", 1.7)
            assert Shown(pg).value("equity-usd") is None
    assert not console.errors, console.errors
