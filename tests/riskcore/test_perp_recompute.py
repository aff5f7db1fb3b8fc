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


def _random_fig(rng: np.random.Generator, k: int) -> HyperliquidFigures:
    """A random Hyperliquid account: 0-4 positions, cross and isolated, tier tables 1-4 wide, reported figures near
    or far from the rule's (so some checks disagree), null liquidation prices among them."""
    n = int(rng.integers(0, 5))
    width = int(rng.integers(1, 5))
    szi = rng.choice([-1.0, 1.0], n) * rng.uniform(0.01, 200.0, n)
    mark = rng.uniform(0.5, 70_000.0, n)
    lower = np.full((n, width), np.inf)
    lev = np.full((n, width), np.nan)
    for i in range(n):
        w = int(rng.integers(1, width + 1))
        lower[i, :w] = np.concatenate([[0.0], np.sort(rng.uniform(1e3, 5e6, w - 1))])
        lev[i, :w] = np.sort(rng.choice([3.0, 5.0, 10.0, 20.0, 25.0, 40.0, 50.0], w))[::-1]
    cross = rng.random(n) < 0.7
    liq = rng.uniform(1.0, 90_000.0, n)
    liq[rng.random(n) < 0.3] = np.nan
    return HyperliquidFigures(
        wallet=f"0x{k:040x}", coin=tuple(f"C{i}" for i in range(n)), szi=szi, position_value_usd=np.abs(szi) * mark,
        entry_px=mark * rng.uniform(0.8, 1.2, n), is_cross=cross,
        isolated_raw_usd=np.where(cross, np.nan, rng.uniform(-1e5, 1e5, n)), tier_lower_usd=lower,
        tier_max_leverage=lev, cross_raw_usd=float(rng.uniform(-1e6, 2e6)),
        reported_cross_account_value_usd=float(rng.uniform(0, 1e6)),
        reported_cross_maintenance_usd=float(rng.uniform(0, 1e5)), reported_liquidation_px=liq,
        reported_margin_used_usd=rng.uniform(0, 1e5, n), reported_unrealized_pnl_usd=rng.uniform(-1e5, 1e5, n))


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.shape == b.shape
                and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f")))
    return repr(a) == repr(b)  # floats by their exact repr (nan included), tuples of discrepancies field by field


def test_hyperliquid_measures_of_many_accounts_equal_each_accounts_own_bit_for_bit() -> None:
    """The block path revalues every tracked account in one stacked book (riskcore.perp.stack_books): health,
    the venue check and the recompute of each account equal the one-account functions exactly, whatever the
    positions, margin modes and tier tables of the others."""
    from riskcore.venues.hyperliquid.health import check_hyperliquid_many, hyperliquid_health, hyperliquid_health_many
    from riskcore.venues.hyperliquid.recompute import hyperliquid_reported_at_many

    rng = np.random.default_rng(20261206)
    for _ in range(30):
        figs = [_random_fig(rng, k) for k in range(int(rng.integers(1, 40)))]
        marks = [np.asarray(f.position_value_usd) / np.abs(np.asarray(f.szi)) * rng.uniform(0.7, 1.3, len(f.coin))
                 for f in figs]
        pairs = list(zip(figs, marks, strict=True))
        for many, one in ((hyperliquid_health_many(figs), [hyperliquid_health(f) for f in figs]),
                          (hyperliquid_health_many(figs, marks), [hyperliquid_health(f, m) for f, m in pairs]),
                          (hyperliquid_reported_at_many(figs, marks),
                           [hyperliquid_reported_at(f, m) for f, m in pairs]),
                          (check_hyperliquid_many(figs), [check_hyperliquid(f) for f in figs])):
            assert len(many) == len(one)
            for x, y in zip(many, one, strict=True):
                for name in type(y).__slots__:
                    assert _same(getattr(x, name), getattr(y, name)), (type(y).__name__, name)
        assert any(not c.ok for c in check_hyperliquid_many(figs)) or len(figs) < 3


def test_dydx_health_of_many_subaccounts_equals_each_ones_own_bit_for_bit() -> None:
    """dYdX's block path evaluates every subaccount in one stacked book: equal to :func:`dydx_health` exactly."""
    from riskcore.venues.dydx_v4.health import dydx_health, dydx_health_many

    rng = np.random.default_rng(7)
    for _ in range(30):
        figs = []
        for k in range(int(rng.integers(1, 30))):
            n = int(rng.integers(0, 4))
            size = rng.choice([-1.0, 1.0], n) * rng.uniform(0.01, 100.0, n)
            oracle = rng.uniform(1.0, 70_000.0, n)
            figs.append(DydxFigures(
                account=f"dydx1{k:038d}/0", market=tuple(f"M{i}-USD" for i in range(n)), size=size,
                oracle_usd=oracle, maintenance_margin_fraction=rng.uniform(0.01, 0.1, n),
                initial_margin_fraction=rng.uniform(0.02, 0.2, n), usdc_usd=float(rng.uniform(-1e6, 1e6)),
                reported_equity_usd=float(rng.uniform(0, 1e6)),
                reported_free_collateral_usd=float(rng.uniform(0, 1e6))))
        oracles = [np.asarray(f.oracle_usd) * rng.uniform(0.7, 1.3, len(f.market)) for f in figs]
        for many, one in ((dydx_health_many(figs), [dydx_health(f) for f in figs]),
                          (dydx_health_many(figs, oracles), [dydx_health(f, o) for f, o in zip(figs, oracles,
                                                                                                strict=True)])):
            for x, y in zip(many, one, strict=True):
                for name in type(y).__slots__:
                    assert _same(getattr(x, name), getattr(y, name)), name
