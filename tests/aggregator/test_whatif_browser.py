"""The wallet page's what-if form in a real browser (Debian's Chromium, Playwright), on a desktop and at 390 × 844:
filled as a user would, it shows the API's before and after figures (exactly the numbers the API answers, at the
precision printed), the API's own error line for bad input, and the page never scrolls sideways."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

import devnet
from aggregator.api.app import create_app
from aggregator.api.server import ApiServer
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from db.store import Store

pytestmark = pytest.mark.chain

HEDGED = devnet.wallet_address("hedged")
CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 20_000
BODY = {"prices": {"WETH": "3000"}, "changes": [
    {"action": "repay", "venue": "aave_v3", "asset": "USDC", "amount": "5000"},
    {"action": "supply", "venue": "morpho_blue", "asset": "WETH", "amount": "2"}]}


@dataclass
class Served:
    url: str
    api: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, seeded_devnet: devnet.DevnetInfo) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("whatif-ui") / "x.db"
    with Store.open(f"sqlite:///{db}") as store:
        store.add_wallets([(HEDGED, "hedged")])
        assert sync_once(devnet_settings(seeded_devnet), store).ok
        with ApiServer(create_app(store)) as server, httpx.Client(base_url=server.url, timeout=30) as api:
            yield Served(server.url, api)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `make browser` installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


def _page(browser: Browser, width: int, height: int) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return page, errors


def _fill(page: Page) -> None:
    form = page.get_by_test_id("whatif-form")
    form.get_by_label("symbol").first.fill("WETH")
    form.get_by_label("USD").first.fill("3000")
    form.get_by_role("button", name="+ change").click()
    rows = form.locator(".wi-row[data-kind=change]")
    first, second = rows.nth(0), rows.nth(1)
    first.get_by_label("action").select_option("repay")
    first.get_by_label("amount", exact=True).fill("5000")
    first.get_by_label("asset").fill("USDC")
    first.get_by_label("venue").select_option("aave_v3")
    second.get_by_label("action").select_option("supply")
    second.get_by_label("amount", exact=True).fill("2")
    second.get_by_label("asset").fill("WETH")
    second.get_by_label("venue").select_option("morpho_blue")


def _no_sideways_scroll(page: Page) -> None:
    """Nothing of the what-if section reaches past the viewport's right edge (so it never makes the page scroll
    sideways; the rest of the page is the dashboard's own layout test's)."""
    outside = page.evaluate("""() => {
      const width = document.documentElement.clientWidth;
      return [...document.querySelectorAll('#whatif, #whatif *')]
        .filter((el) => {
          const r = el.getBoundingClientRect();
          return r.width > 0 && (r.right > width + 0.5 || r.left < -0.5);
        })
        .map((el) => `${el.tagName}.${el.className} ${Math.round(el.getBoundingClientRect().right)} > ${width}`);
    }""")
    assert not outside, outside


@pytest.mark.parametrize(("width", "height"), [(1440, 1000), (390, 844)], ids=["desktop", "phone"])
def test_the_form_shows_the_apis_before_and_after(served: Served, browser: Browser, width: int, height: int) -> None:
    expected = served.api.post(f"/v1/wallets/{HEDGED}/whatif", json=BODY)
    assert expected.status_code == 200, expected.text
    doc = expected.json()
    page, errors = _page(browser, width, height)
    page.goto(f"{served.url}/ui/wallet/{HEDGED}")
    page.get_by_test_id("whatif-submit").wait_for()
    _fill(page)
    page.get_by_test_id("whatif-submit").click()
    page.get_by_test_id("whatif-result").wait_for()
    for v in doc["venues"]:
        if v["before"]["health_factor"] is None and v["after"]["health_factor"] is None:
            continue
        for when in ("before", "after"):
            cell = page.get_by_test_id(f"whatif-{when}-{v['venue']}")
            assert cell.get_attribute("data-value") == repr(v[when]["health_factor"]), (v["venue"], when)
            assert float(cell.inner_text().replace(",", "")) == pytest.approx(v[when]["health_factor"], abs=5e-5)
    unified = page.get_by_test_id("whatif-unified-after")
    assert float(unified.get_attribute("data-value") or "nan") == doc["unified"]["after"]["unified_health"]
    assert page.get_by_test_id("whatif-summary").inner_text() == doc["summary"]["text"]
    _no_sideways_scroll(page)
    page.screenshot(path=str(_artifacts() / f"whatif-{width}.png"), full_page=True)
    assert not errors, errors
    page.context.close()


def test_bad_input_shows_the_apis_error_line(served: Served, browser: Browser) -> None:
    page, _errors = _page(browser, 390, 844)
    page.goto(f"{served.url}/ui/wallet/{HEDGED}")
    form = page.get_by_test_id("whatif-form")
    form.get_by_test_id("whatif-submit").wait_for()
    row = form.locator(".wi-row[data-kind=change]").first
    row.get_by_label("action").select_option("repay")
    row.get_by_label("amount", exact=True).fill("40001")
    row.get_by_label("asset").fill("USDC")
    row.get_by_label("venue").select_option("aave_v3")
    form.get_by_test_id("whatif-submit").click()
    error = page.get_by_test_id("whatif-error")
    error.wait_for()
    api = served.api.post(f"/v1/wallets/{HEDGED}/whatif", json={"changes": [
        {"action": "repay", "venue": "aave_v3", "asset": "USDC", "amount": "40001"}]})
    assert api.status_code == 422
    assert error.inner_text() == api.json()["error"]
    _no_sideways_scroll(page)
    page.context.close()


def test_the_script_is_served_and_local(served: Served) -> None:
    resp = served.api.get("/ui/static/whatif.js")
    assert resp.status_code == 200
    assert "javascript" in resp.headers["content-type"]
    assert not re.findall(r"(?:https?:)?//[\w.-]+\.\w+/", resp.text)  # nothing fetched from elsewhere
    page = served.api.get(f"/ui/wallet/{HEDGED}").text
    assert '<script type="module" src="/ui/static/whatif.js"></script>' in page
    assert 'id="whatif"' in page


def _artifacts() -> Path:
    import os

    path = Path(os.environ.get("XMARGIN_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
