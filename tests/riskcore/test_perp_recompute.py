"""The local recompute of perp accounts (riskcore.venues.<venue>.recompute): at the marks a payload was printed at
it reproduces the venue's own figures (within the venue's rounding bound), and it moves with the marks as the
margin rule says (account value by size × Δmark; maintenance by the tier's rate)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from connectors.dydx_v4.decode import decode_perpetual_markets, decode_subaccount
from connectors.dydx_v4.models import DydxSnapshot
from connectors.hyperliquid.decode import decode_clearinghouse_state, decode_meta_and_asset_ctxs
from connectors.hyperliquid.models import HyperliquidSnapshot
from devnet.perp_api import HEDGED_LABEL, PerpApi, dydx_address
from devnet.seed import wallet_address
from riskcore.venues.dydx_v4 import DydxFigures, check_dydx, dydx_reported_at
from riskcore.venues.hyperliquid import HyperliquidFigures, check_hyperliquid, hyperliquid_reported_at


def hl_fig(api: PerpApi, wallet: str) -> HyperliquidFigures:
    _, meta = api.handle("POST", "/info", json.dumps({"type": "metaAndAssetCtxs"}).encode())
    _, state = api.handle("POST", "/info", json.dumps({"type": "clearinghouseState", "user": wallet}).encode())
    market = decode_meta_and_asset_ctxs(meta, 1, "venue")
    acct = decode_clearinghouse_state(state, wallet)
    snap = HyperliquidSnapshot(market=market, accounts=(acct,), observed_at_ms=1, observed_at_source="venue")
    return HyperliquidFigures(**snap.health_inputs(wallet))


@pytest.mark.parametrize("label", [HEDGED_LABEL, "perp_isolated"])
def test_hyperliquid_recompute_at_the_printed_marks_reproduces_the_venue(label: str) -> None:
    api = PerpApi()
    fig = hl_fig(api, wallet_address(label))
    marks = np.asarray(fig.position_value_usd) / np.abs(np.asarray(fig.szi))
    rep = hyperliquid_reported_at(fig, marks)
    ours = replace(fig, reported_cross_account_value_usd=rep.cross_account_value_usd,
                   reported_cross_maintenance_usd=rep.cross_maintenance_usd,
                   reported_liquidation_px=rep.liquidation_px,
                   reported_unrealized_pnl_usd=rep.unrealized_pnl_usd,
                   reported_margin_used_usd=np.where(np.asarray(fig.is_cross), fig.reported_margin_used_usd,
                                                     rep.margin_used_usd))
    assert check_hyperliquid(ours).ok


def test_hyperliquid_recompute_moves_with_the_marks_as_the_rule_says() -> None:
    api = PerpApi()
    fig = hl_fig(api, wallet_address(HEDGED_LABEL))  # short 15 ETH, cross
    base = np.asarray(fig.position_value_usd) / np.abs(np.asarray(fig.szi))
    a = hyperliquid_reported_at(fig, base)
    b = hyperliquid_reported_at(fig, base + 100.0)
    assert b.cross_account_value_usd - a.cross_account_value_usd == pytest.approx(-15 * 100.0)
    # ETH: one tier at 25x → mmr 2 %: maintenance grows by 2 % of the notional's change
    assert b.cross_maintenance_usd - a.cross_maintenance_usd == pytest.approx(0.02 * 15 * 100.0)
    assert b.liquidation_px[0] == pytest.approx(a.liquidation_px[0], rel=1e-12)  # cash fixed: same liquidation price


def test_dydx_recompute_at_the_indexer_prices_reproduces_its_figures_and_moves_with_them() -> None:
    api = PerpApi()
    address = dydx_address(HEDGED_LABEL)
    _, markets_raw = api.handle("GET", "/v4/perpetualMarkets", b"")
    _, sub_raw = api.handle("GET", f"/v4/addresses/{address}/subaccountNumber/0", b"")
    markets = decode_perpetual_markets(markets_raw, 1, "http_date")
    sub = decode_subaccount(sub_raw, address, 0, 1, "http_date")
    snap = DydxSnapshot(markets=markets, accounts=(sub,), observed_at_ms=1, observed_at_source="http_date")
    fig = DydxFigures(**snap.health_inputs(sub.account_id))
    rep = dydx_reported_at(fig, fig.oracle_usd)
    assert check_dydx(replace(fig, reported_equity_usd=rep.equity_usd,
                              reported_free_collateral_usd=rep.free_collateral_usd)).ok
    moved = dydx_reported_at(fig, np.asarray(fig.oracle_usd) * 1.1, [4000.0])
    assert moved.equity_usd - rep.equity_usd == pytest.approx(float(fig.size[0]) * float(fig.oracle_usd[0]) * 0.1)
    assert moved.unrealized_pnl_usd[0] == pytest.approx(float(fig.size[0]) * (float(fig.oracle_usd[0]) * 1.1 - 4000))
