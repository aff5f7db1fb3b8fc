"""The dashboard on a phone (390 × 844, headless Chromium) and when its data is stale.

* No page scrolls sideways (``document.scrollingElement.scrollWidth <= innerWidth``) on the wallet list and the
  wallet page; tables become cards; the heat map draws fewer, larger cells; every number shown is still the API's.
* Both pages open with the answer — lowest venue health, unified health, first liquidation — and every position
  shows what a trader expects beside it (perp entry, mark, leverage, P&L, liquidation price; LP range, in/out of
  range, fees owed; lending max withdrawal and borrowing room).
* Stale data is never shown as current: data older than the bound, or a sync that failed for real (the chain behind
  the configured name unreachable), puts up a banner naming since when and why, and no green "ok" badge or green
  live dot remains.

Screenshots go to ``tests/artifacts/`` (``dashboard-*-phone.png``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

import devnet
from aggregator.config import Settings
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import Syncer
from db import Store
from tests.aggregator.test_dashboard_browser import (
    HEDGED,
    REFRESH_S,
    WAIT_MS,
    Console,
    Env,
    Shown,
    artifacts_dir,
    browser,
    check_headline,
    check_positions,
    check_wallet_page,
    dashboard_app,
    env,
    expected_headline,
    seeded,
    serve,
    wait_for_block,
)
from tests.db import db_testdata as td

__all__ = ["browser", "env", "seeded"]  # fixtures shared with the desktop test

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Browser) -> Iterator[tuple[Page, Console]]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    console = Console()
    pg.on("console", lambda msg: console.errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
    yield pg, console
    context.close()


def no_sideways_scroll(page: Page) -> None:
    """Nothing on the page is wider than the screen: it cannot be scrolled sideways."""
    scroll_width, inner_width = page.evaluate(
        "() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    wider = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
        .slice(0, 5).map(e => `${e.tagName}.${e.className}#${e.id}`)""")
    assert scroll_width <= inner_width, (scroll_width, inner_width, wider)
    assert inner_width == PHONE["width"]


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


def unreachable(settings: Settings) -> Settings:
    """The same configuration with its chain's RPC pointed at a port nothing listens on."""
    chains = tuple(c.model_copy(update={"rpc_url": f"http://127.0.0.1:{dead_port()}", "timeout_s": 1.0,
                                        "max_retries": 0}) for c in settings.chains)
    return settings.model_copy(update={"chains": chains})


def green_ok(page: Page) -> int:
    """Green "ok" badges and green live dots on the page."""
    return int(page.evaluate("""() => [...document.querySelectorAll('.badge.ok, .dot.on')]
        .filter(e => e.offsetParent !== null && /^(ok|)$/i.test(e.textContent.trim())).length"""))


@pytest.mark.chain
def test_pages_fit_a_phone_and_show_what_traders_expect(env: Env, phone: tuple[Page, Console]) -> None:
    pg, console = phone
    env.sync()
    devnet.set_price(env.info, "WETH", 3_700)
    env.sync()  # two blocks: a history and a net worth to draw
    health = env.get(f"/v1/wallets/{HEDGED}/health")
    risk = env.get(f"/v1/wallets/{HEDGED}/risk")

    pg.goto(f"{env.url}/ui/wallet/{HEDGED}?refresh={REFRESH_S}")
    wait_for_block(pg, health["block"])
    no_sideways_scroll(pg)
    shown = check_wallet_page(pg, env, health, risk)  # every number the API's (headline, positions, grid…)
    counted = check_positions(shown, health)
    assert counted["perp"] >= 2, counted  # hyperliquid and dYdX
    assert counted["lp"] >= 1, counted
    assert counted["lending"] >= 4, counted  # Aave and Morpho, collateral and debt
    # The headline is the first thing under the top bar.
    headline_top = pg.get_by_test_id("headline").bounding_box()
    main_top = pg.locator("main").bounding_box()
    assert headline_top is not None
    assert main_top is not None
    assert headline_top["y"] < main_top["y"]
    # Tables are cards: no table head, every cell labelled.
    assert pg.locator("#liq-prices thead").is_hidden()
    assert pg.locator("#liq-prices td[data-label='liq. price']").first.is_visible()
    # The heat map draws fewer cells at a readable size: at most 9 columns of at least 40 px, text ≥ 12 px.
    heat = pg.get_by_test_id("pnl-heatmap")
    assert int(heat.get_attribute("data-cols") or 0) <= 9
    cell = pg.locator(".heatmap .cell rect.bg").first.bounding_box()
    assert cell is not None
    assert cell["width"] >= 40
    sizes = pg.evaluate("() => [...document.querySelectorAll('.heatmap text, .history text')]"
                        ".map(t => parseFloat(getComputedStyle(t).fontSize))")
    assert sizes
    assert min(sizes) >= 12, sizes
    # The history runs on time, with the liquidation line; its points are the API's.
    assert "liquidation (health 1)" in pg.get_by_test_id("history-chart").inner_html()
    assert "time (UTC" in pg.get_by_test_id("history-chart").inner_html()
    # The unified-health sentence is there (a tooltip, and on tap).
    tip = pg.get_by_test_id("headline-unified-tip")
    assert "equity" in (tip.get_attribute("data-tip") or "")
    tip.tap()
    assert "below 1" in pg.evaluate(
        "() => getComputedStyle(document.querySelector('[data-testid=headline-unified-tip]'), '::after').content")
    pg.screenshot(path=str(artifacts_dir() / "dashboard-wallet-phone.png"), full_page=True)

    pg.goto(f"{env.url}/ui/?refresh={REFRESH_S}")
    pg.wait_for_function("() => document.body.dataset.loaded === '1'", timeout=WAIT_MS)
    no_sideways_scroll(pg)
    assert pg.locator("#wallets thead").is_hidden()
    listed = Shown(pg)
    # The list opens with its riskiest wallet's line; every wallet shows its first liquidation.
    rows: list[tuple[float, str, dict[str, Any], dict[str, Any] | None]] = []
    for w in env.get("/v1/wallets"):
        h = env.get(f"/v1/wallets/{w['address']}/health")
        r = env.api.get(f"/v1/wallets/{w['address']}/risk")
        r_doc = r.json() if r.status_code == 200 else None
        lowest, unified, liq = expected_headline(h, r_doc)
        score = min(lowest["health_factor"] if lowest else float("inf"),
                    unified if unified is not None else float("inf"))
        rows.append((score, w["address"], h, r_doc))
        if liq is not None and liq.get("common_move"):  # every risky price together: the move alone
            listed.check(f"wallet-liq-move-{w['address']}", liq["move"])
        elif liq is not None:
            listed.check(f"wallet-liq-price-{w['address']}", liq["price_usd"])
            listed.check(f"wallet-liq-move-{w['address']}", liq["move"])
    _, riskiest, h, r_doc = min(rows, key=lambda row: row[0])
    check_headline(listed, h, r_doc)
    assert pg.get_by_test_id("headline-wallet").get_attribute("href") == f"/ui/wallet/{riskiest}"
    pg.screenshot(path=str(artifacts_dir() / "dashboard-wallets-phone.png"), full_page=True)
    assert not console.errors, console.errors


def test_old_data_gets_a_stale_banner_and_no_green_badge(tmp_path: Path, phone: tuple[Page, Console]) -> None:
    """Readings from long ago (a store last synced in 2025) are stale however the age is known (the server's
    freshness, or the documents' own times): a banner says so, and nothing is green "ok"."""
    pg, console = phone
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        wallets = td.setup(store, 1)
        store.write_sync(td.batch(wallets, 100))
        with serve(dashboard_app(store)) as url:
            pg.goto(f"{url}/ui/wallet/{wallets[0]}?refresh={REFRESH_S}")
            wait_for_block(pg, 100)
            banner = pg.get_by_test_id("stale-banner")
            banner.wait_for(state="visible")
            text = banner.inner_text()
            assert "block 100" in text
            assert "may no longer be true" in text
            assert green_ok(pg) == 0
            assert pg.get_by_test_id("venue-status-aave_v3").text_content() == "stale"
            assert pg.get_by_test_id("updated").inner_text().startswith("STALE")
            no_sideways_scroll(pg)
            pg.goto(f"{url}/ui/?refresh={REFRESH_S}")
            pg.wait_for_function("() => document.body.dataset.loaded === '1'", timeout=WAIT_MS)
            pg.get_by_test_id("stale-banner").wait_for(state="visible")
            assert green_ok(pg) == 0
            no_sideways_scroll(pg)
    unexpected = [e for e in console.errors if "404" not in e]  # this store has no risk result: the page asks
    assert not unexpected, unexpected


@pytest.mark.chain
def test_a_failed_sync_puts_up_a_stale_banner_naming_since_when_and_why(
    env: Env, phone: tuple[Page, Console]
) -> None:
    """Needs the lead's backend (contract.md): the store records the failed sync and the health document carries
    ``freshness`` (``stale``, ``failing_since``, ``reason``)."""
    pg, console = phone
    env.sync()
    health = env.get(f"/v1/wallets/{HEDGED}/health")
    pg.goto(f"{env.url}/ui/wallet/{HEDGED}?refresh={REFRESH_S}")
    wait_for_block(pg, health["block"])
    banner = pg.get_by_test_id("stale-banner")
    assert banner.is_hidden()
    assert pg.locator("#live-dot.on").count() == 1

    # The chain goes away for real: the next sync cannot reach its RPC, and fails.
    with Syncer(unreachable(devnet_settings(env.info)), env.syncer.store) as broken:
        report = broken.run()
    assert not report.ok
    after = env.get(f"/v1/wallets/{HEDGED}/health")
    freshness = after.get("freshness")
    assert freshness is not None, "the health document carries no `freshness` yet (the lead's backend, contract.md)"
    assert freshness["stale"] is True
    assert freshness["last_sync"]["status"] == "failed"
    assert freshness["failing_since"]
    assert after["block"] == health["block"]  # the last known values stay

    banner.wait_for(state="visible")
    text = banner.inner_text()
    assert "failed" in text
    assert "since" in text
    assert freshness["reason"] in text or (freshness["last_sync"]["error"] or "") in text
    assert f"block {health['block']}" in text
    assert green_ok(pg) == 0
    assert pg.locator("#live-dot.on").count() == 0
    assert pg.get_by_test_id("venue-hf-aave_v3").is_visible()  # the last known values, marked stale
    no_sideways_scroll(pg)
    pg.screenshot(path=str(artifacts_dir() / "dashboard-stale-phone.png"), full_page=True)

    pg.goto(f"{env.url}/ui/?refresh={REFRESH_S}")
    pg.wait_for_function("() => document.body.dataset.loaded === '1'", timeout=WAIT_MS)
    pg.get_by_test_id("stale-banner").wait_for(state="visible")
    assert "failed" in pg.get_by_test_id("stale-banner").inner_text()
    assert green_ok(pg) == 0
    no_sideways_scroll(pg)
    pg.screenshot(path=str(artifacts_dir() / "dashboard-wallets-stale-phone.png"), full_page=True)

    # The chain comes back: the next good sync clears the banner.
    env.sync()
    banner.wait_for(state="hidden")
    unexpected = [e for e in console.errors if "404" not in e]
    assert not unexpected, unexpected
