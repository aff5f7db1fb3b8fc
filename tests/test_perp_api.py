"""The devnet's local perp API, read by the real connectors over loopback; its figures vs riskcore's."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from connectors.dydx_v4 import DydxConnector
from connectors.errors import RpcUnavailableError
from connectors.hyperliquid import HyperliquidConnector
from devnet.models import DevnetInfo
from devnet.perp_api import HEDGED_LABEL, PerpApi, PerpPosition, dydx_address, running_for, serve_for, set_mark
from devnet.seed import wallet_address
from riskcore.venues.dydx_v4.health import DydxFigures, check_dydx, dydx_health
from riskcore.venues.hyperliquid.health import HyperliquidFigures, check_hyperliquid, hyperliquid_health

HEDGED = wallet_address(HEDGED_LABEL)
HEDGED_DYDX = dydx_address(HEDGED_LABEL)
ISOLATED = wallet_address("perp_isolated")


@pytest.fixture
def api() -> Iterator[PerpApi]:
    with PerpApi() as server:
        yield server


def hl(api: PerpApi) -> HyperliquidConnector:
    return HyperliquidConnector(api.base_url, max_retries=0, timeout_s=5)


def dx(api: PerpApi) -> DydxConnector:
    return DydxConnector(api.base_url, max_retries=0, timeout_s=5)


def hl_figures(api: PerpApi, wallet: str = HEDGED) -> HyperliquidFigures:
    with hl(api) as c:
        return HyperliquidFigures(**c.read_accounts([wallet]).health_inputs(wallet))


def dx_figures(api: PerpApi, account: str = HEDGED_DYDX) -> DydxFigures:
    with dx(api) as c:
        return DydxFigures(**c.read_accounts([account]).health_inputs(account))


def test_the_hedged_wallet_is_seeded_on_both_venues(api: PerpApi) -> None:
    assert api.base_url.startswith("http://127.0.0.1:")
    with hl(api) as c:
        snap = c.read_accounts([HEDGED])
    (pos,) = snap.account(HEDGED).positions
    assert (pos.coin, pos.szi, pos.entry_px, pos.leverage.type, pos.leverage.value) == (
        "ETH",
        Decimal(-15),
        Decimal(4000),
        "cross",
        10,
    )
    assert snap.account(HEDGED).account_value_usd == Decimal(10_000)
    assert snap.observed_at_source == "venue"
    eth = snap.market.asset("ETH")
    assert eth is not None
    assert eth.mark_px == Decimal(4000)
    assert eth.margin_tiers[0].max_leverage == 25
    btc = snap.market.asset("BTC")
    assert btc is not None
    assert [t.max_leverage for t in btc.margin_tiers] == [40, 20]
    with dx(api) as c:
        dsnap = c.read_accounts([HEDGED_DYDX])
    sub = dsnap.account(HEDGED_DYDX)
    assert sub.exists
    assert sub.positions[0].size == Decimal(-10)
    assert sub.positions[0].side == "SHORT"
    assert sub.equity_usd == Decimal(20_000)
    assert dsnap.observed_at_source == "http_date"


@pytest.mark.parametrize("eth", ["3000", "4000", "4400.5", "4575", "4600", "5000", "6000"])
def test_the_devnets_figures_agree_with_riskcores_at_every_mark(api: PerpApi, eth: str) -> None:
    api.set_mark("ETH", eth)
    api.set_mark("BTC", 55_000)
    for wallet in (HEDGED, ISOLATED):
        check_hyperliquid(hl_figures(api, wallet)).raise_for_disagreement()
    for account in (HEDGED_DYDX, f"{dydx_address('perp_isolated')}/0"):
        check_dydx(dx_figures(api, account)).raise_for_disagreement()


def test_set_mark_moves_liquidation_state_over_loopback(api: PerpApi) -> None:
    start = hyperliquid_health(hl_figures(api))
    assert not start.any_liquidatable
    assert start.liquidation_px.tolist() == pytest.approx([70_000 / 15.3])  # 10k + 60k cash, mmr 2% at 25x
    assert not dydx_health(dx_figures(api)).any_liquidatable

    assert api.set_mark("ETH", 4600)  # above Hyperliquid's 4,575.16, below dYdX's 60,000 / 10.3 = 5,825.24
    with hl(api) as c:
        acct = c.read_accounts([HEDGED]).account(HEDGED)
    assert acct.cross_margin_summary.account_value_usd < acct.cross_maintenance_margin_used_usd  # venue's own view
    assert hyperliquid_health(hl_figures(api)).any_liquidatable
    dydx_now = dydx_health(dx_figures(api))
    assert not dydx_now.any_liquidatable
    assert dydx_now.liquidation_px.tolist() == pytest.approx([60_000 / 10.3])

    assert api.set_mark("ETH-USD", 6000)
    assert dydx_health(dx_figures(api)).any_liquidatable

    assert api.set_mark("WETH", 3900)
    assert not hyperliquid_health(hl_figures(api)).any_liquidatable
    assert not dydx_health(dx_figures(api)).any_liquidatable


def test_unknown_accounts_read_empty(api: PerpApi) -> None:
    stranger = wallet_address("perp-nobody")
    with hl(api) as c:
        assert c.read_accounts([stranger]).account(stranger).positions == ()
    with dx(api) as c:
        sub = c.read_accounts([dydx_address("perp-nobody")]).account(dydx_address("perp-nobody"))
    assert not sub.exists
    assert sub.positions == ()


def test_added_accounts_are_served_with_the_venues_rules(api: PerpApi) -> None:
    who = wallet_address("perp-added")
    api.add_account(
        "hyperliquid",
        who,
        usdc=2_000,
        positions=[PerpPosition("ETH", "1.5", 4000, leverage=5), PerpPosition("SOL", -20, 150, leverage=3)],
    )
    fig = hl_figures(api, who)
    check_hyperliquid(fig).raise_for_disagreement()
    health = hyperliquid_health(fig)
    assert health.equity_usd.tolist() == pytest.approx([2_000.0])
    # maintenance: 6,000 × 1/(2·25) + 3,000 × 1/(2·20)
    assert health.maintenance_usd.tolist() == pytest.approx([6_000 / 50 + 3_000 / 40])
    with pytest.raises(ValueError, match="no Hyperliquid asset"):
        api.add_account("hyperliquid", who, usdc=1, positions=[PerpPosition("DOGE", 1, 1)])
    with pytest.raises(ValueError, match="dYdX"):
        api.add_account("dydx", "0x" + "1" * 40, usdc=1)


def test_malformed_requests_get_the_venues_errors(api: PerpApi) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        r = client.post("/info", json={"type": "clearinghouseState", "user": "0x12"})
        assert r.status_code == 422
        r = client.get("/v4/addresses/0x12/subaccountNumber/0")
        assert r.status_code == 400
        assert "valid dydx address" in r.json()["errors"][0]["msg"]
        r = client.get(f"/v4/addresses/{HEDGED_DYDX}/subaccountNumber/9")
        assert r.status_code == 404
        assert "No subaccount found" in r.json()["errors"][0]["msg"]
        assert r.headers["date"]


def test_the_devnet_hook_follows_set_price_once_serving() -> None:
    info = DevnetInfo(rpc_url="http://127.0.0.1:1/perp-hook-test", chain_id=31337)
    assert running_for(info) is None
    assert set_mark(info, "WETH", 4600) is False  # nothing serves this devnet yet: a no-op
    api = serve_for(info)
    try:
        assert serve_for(info) is api
        assert running_for(info) is api
        assert set_mark(info, "WETH", 4600) is True
        assert set_mark(info, "DAI", 1) is False  # no perp market for it
        assert hyperliquid_health(hl_figures(api)).any_liquidatable
    finally:
        api.stop()
    assert running_for(info) is None
    with pytest.raises(RuntimeError, match="not running"):
        _ = api.base_url


def test_a_stopped_server_is_unreachable() -> None:
    api = PerpApi()
    url = api.start()
    api.stop()
    connector = HyperliquidConnector(url, max_retries=0, timeout_s=2)
    with connector, pytest.raises(RpcUnavailableError, match="Connect"):
        connector.read_accounts([HEDGED])
