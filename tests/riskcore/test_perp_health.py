"""Perp margin math: hand-worked cases, tiers, liquidation prices, and the venues' own reported figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from connectors.dydx_v4.decode import decode_perpetual_markets, decode_subaccount
from connectors.dydx_v4.models import DydxSnapshot
from connectors.hyperliquid.decode import decode_clearinghouse_state, decode_meta_and_asset_ctxs
from connectors.hyperliquid.models import HyperliquidSnapshot
from riskcore.perp import (
    PerpBook,
    VenueDisagreementError,
    account_equity,
    account_maintenance,
    check_against_venue,
    free_collateral,
    liquidatable,
    liquidation_price,
    maintenance_margin,
    margin_health,
    tier_deductions,
)
from riskcore.venues.dydx_v4.health import DydxFigures, check_dydx, dydx_health, dydx_initial_margin_fraction
from riskcore.venues.hyperliquid.health import (
    HyperliquidFigures,
    check_hyperliquid,
    hyperliquid_health,
    hyperliquid_tier_mmr,
)

PAYLOADS = Path(__file__).parents[1] / "connectors" / "payloads"
HL_WALLET = "0x31ca8395cf837de08b24da3f660e77761dfb974b"
DYDX = "dydx199tqg4wdlnu4qjlxchpd7seg454937hjrknju4"
INF = np.inf


def load(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((PAYLOADS / name).read_text())  # type: ignore[no-any-return]


def hl_figures(state: dict) -> HyperliquidFigures:  # type: ignore[type-arg]
    acct = decode_clearinghouse_state(state, HL_WALLET)
    market = decode_meta_and_asset_ctxs(load("hyperliquid_meta_and_asset_ctxs_docs.json"), 0, "local_clock")
    snap = HyperliquidSnapshot(market=market, accounts=(acct,), observed_at_ms=0, observed_at_source="venue")
    return HyperliquidFigures(**snap.health_inputs(HL_WALLET))


def dydx_figures(sub: dict) -> DydxFigures:  # type: ignore[type-arg]
    markets = decode_perpetual_markets(load("dydx_perpetual_markets_ccxt.json"), 0, "local_clock")
    acct = decode_subaccount(sub, DYDX, 0, 0, "local_clock")
    snap = DydxSnapshot(markets=markets, accounts=(acct,), observed_at_ms=0, observed_at_source="http_date")
    return DydxFigures(**snap.health_inputs(DYDX))


# --- hand-worked -------------------------------------------------------------------------------------
def test_hand_worked_short_eth_cross() -> None:
    # 10,000 USDC deposited, short 15 ETH at 4,000 (cash 70,000), 25x max leverage → mmr 2%.
    book = PerpBook.build([-15.0], [4000.0], [0], [70_000.0], [0.0], [0.02])
    assert account_equity(book).tolist() == [10_000.0]
    assert account_maintenance(book).tolist() == pytest.approx([1_200.0])
    assert margin_health(account_equity(book), account_maintenance(book)) == pytest.approx([10_000 / 1_200])
    # 70,000 − 15 P = 0.3 P  →  P = 70,000 / 15.3
    assert liquidation_price(book) == pytest.approx([70_000 / 15.3], rel=1e-12)
    at = book.with_marks([4_600.0])
    assert liquidatable(account_equity(at), account_maintenance(at)).tolist() == [True]
    assert liquidatable(account_equity(book), account_maintenance(book)).tolist() == [False]


def test_liquidation_is_exactly_at_the_price_where_equity_meets_maintenance() -> None:
    book = PerpBook.build([-15.0], [4000.0], [0], [70_000.0], [0.0], [0.02])
    p = float(liquidation_price(book)[0])
    below, above = book.with_marks([p * (1 - 1e-9)]), book.with_marks([p * (1 + 1e-9)])
    assert not liquidatable(account_equity(below), account_maintenance(below))[0]
    assert liquidatable(account_equity(above), account_maintenance(above))[0]


def test_hyperliquid_mmr_is_half_the_initial_margin_at_max_leverage() -> None:
    assert hyperliquid_tier_mmr([40, 50, 3]).tolist() == pytest.approx([0.0125, 0.01, 1 / 6])


def test_tier_deductions_keep_the_requirement_continuous() -> None:
    # The docs' "tiered 10x" table: 10x below 3M, 5x above → mmr 5% then 10%, deduction 3M × 5% = 150k.
    lower = np.array([[0.0, 3_000_000.0]])
    mmr = hyperliquid_tier_mmr([[10, 5]])
    assert tier_deductions(lower, mmr).tolist() == [[0.0, 150_000.0]]
    notional = np.array([1_000_000.0, 3_000_000.0, 4_000_000.0])
    lows, mmrs = np.repeat(lower, 3, axis=0), np.repeat(mmr, 3, axis=0)
    assert maintenance_margin(notional, lows, mmrs).tolist() == pytest.approx([50_000.0, 150_000.0, 250_000.0])
    eps = 1e-3
    left = maintenance_margin([3_000_000.0 - eps], lower, mmr)[0]
    right = maintenance_margin([3_000_000.0 + eps], lower, mmr)[0]
    assert right - left == pytest.approx(0.0, abs=1e-3)


def test_padding_tiers_are_ignored() -> None:
    lower = np.array([[0.0, INF, INF], [0.0, 3e6, INF]])
    mmr = np.array([[0.01, np.nan, np.nan], [0.05, 0.1, np.nan]])
    assert maintenance_margin([5e6, 5e6], lower, mmr).tolist() == pytest.approx([50_000.0, 350_000.0])
    assert np.isfinite(tier_deductions(lower, mmr)).all()


def test_liquidation_price_crosses_tiers_when_it_must() -> None:
    # Short 1,000 units at 2,000 (2M notional, tier 0 of the 10x/5x table), thin equity: the root lies
    # above 3M notional, in tier 1.
    lower = np.array([[0.0, 3_000_000.0]])
    mmr = hyperliquid_tier_mmr([[10, 5]])
    book = PerpBook.build([-1000.0], [2000.0], [0], [3_400_000.0], lower, mmr)
    (p,) = liquidation_price(book)
    assert 1000 * p > 3_000_000
    at = book.with_marks([p])
    assert account_equity(at)[0] == pytest.approx(account_maintenance(at)[0], rel=1e-12)


def test_a_cross_account_holds_the_other_positions_fixed() -> None:
    # One account: short 15 ETH @ 4,000 (2%), long 1 BTC @ 60,000 (1.25%), cash 20,000 + 60,000 − 60,000.
    book = PerpBook.build([-15.0, 1.0], [4000.0, 60_000.0], [0, 0], [20_000.0], [0.0], [0.02, 0.0125])
    eth, btc = liquidation_price(book)
    at = book.with_marks([eth, 60_000.0])
    assert account_equity(at)[0] == pytest.approx(account_maintenance(at)[0], rel=1e-12)
    at = book.with_marks([4000.0, btc])
    assert account_equity(at)[0] == pytest.approx(account_maintenance(at)[0], rel=1e-12)
    assert btc < 60_000
    assert eth > 4000


def test_an_unliquidatable_long_has_no_liquidation_price() -> None:
    # 1 ETH long fully paid for: cash 0 + 4,000 of collateral → equity(P) = P ≥ 0.02 P for every P > 0.
    book = PerpBook.build([1.0, 0.0], [4000.0, 100.0], [0, 1], [0.0, 5.0], [0.0], [0.02, 0.02])
    liq = liquidation_price(book)
    assert np.isnan(liq).all()


def test_vectorized_over_accounts() -> None:
    rng = np.random.default_rng(7)
    n, k = 200, 40
    size = rng.normal(0, 10, n)
    mark = rng.uniform(10, 5_000, n)
    account = rng.integers(0, k, n)
    cash = rng.uniform(0, 50_000, k) - np.bincount(account, size * mark, minlength=k) * 0.9
    mmr = rng.uniform(0.005, 0.1, n)
    book = PerpBook.build(size, mark, account, cash, [0.0], mmr)
    eq, mm = account_equity(book), account_maintenance(book)
    assert eq.shape == mm.shape == (k,)
    liq = liquidation_price(book)
    assert liq.shape == (n,)
    for i in np.flatnonzero(np.isfinite(liq)):
        marks = mark.copy()
        marks[i] = liq[i]
        at = book.with_marks(marks)
        j = account[i]
        assert account_equity(at)[j] == pytest.approx(account_maintenance(at)[j], rel=1e-9, abs=1e-6)


def test_health_without_positions_is_infinite() -> None:
    assert margin_health([5.0, 0.0, -1.0], [0.0, 0.0, 0.0]).tolist() == [INF, INF, -INF]


def test_dydx_effective_imf_scales_between_the_caps() -> None:
    out = dydx_initial_margin_fraction(
        [0.05, 0.05, 0.05, 0.05, 0.05],
        [1e6, 0.0, 750_000.0, 2e6, 1e6],
        [0, 500_000, 500_000, 500_000, 500_000],
        [0, 1_000_000, 1_000_000, 1_000_000, 1_000_000],
    )
    # no cap → base; below lower → base; halfway → base + 0.5 × 0.95; at/above upper → 1
    assert out.tolist() == pytest.approx([0.05, 0.05, 0.525, 1.0, 1.0])


def test_free_collateral_subtracts_initial_margin() -> None:
    book = PerpBook.build([-10.0], [4000.0], [0], [60_000.0], [0.0], [0.03])
    assert free_collateral(book, [0.05]).tolist() == pytest.approx([20_000.0 - 2_000.0])


# --- against the venues' own figures -----------------------------------------------------------------
def test_hyperliquid_docs_payload_agrees_with_our_recomputation() -> None:
    fig = hl_figures(load("hyperliquid_clearinghouse_state_docs.json"))
    check = check_hyperliquid(fig).raise_for_disagreement()
    assert check.ok
    assert "ETH.liquidationPx" in check.fields
    assert "ETH.marginUsed" in check.fields
    i = check.fields.index("ETH.liquidationPx")
    assert check.computed[i] == pytest.approx(2866.26936529, abs=1e-4)
    assert check.tolerance[i] < 1e-3  # tight: rounding only
    health = hyperliquid_health(fig)
    assert health.account_labels == ("cross", "isolated:ETH")
    assert health.equity_usd.tolist() == pytest.approx([13104.514502, 4.967826])
    assert health.maintenance_usd.tolist() == pytest.approx([0.0, 1.0002765])
    assert not health.any_liquidatable
    # Revalued at the liquidation price, the isolated position is at the edge.
    at = hyperliquid_health(fig, mark_usd=[2866.0])
    assert at.liquidatable.tolist() == [False, True]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("liquidationPx", "2866.28"),  # off by 0.01
        ("liquidationPx", None),  # the venue says none, we compute one
        ("marginUsed", "4.977826"),
        ("unrealizedPnl", "-0.0234"),
    ],
)
def test_a_hyperliquid_disagreement_is_flagged(field: str, value: str | None) -> None:
    state = load("hyperliquid_clearinghouse_state_docs.json")
    state["assetPositions"][0]["position"][field] = value
    check = check_hyperliquid(hl_figures(state))
    assert not check.ok
    assert [d.field for d in check.discrepancies] == [f"ETH.{field}"]
    with pytest.raises(VenueDisagreementError, match=f"ETH.{field}") as info:
        check.raise_for_disagreement()
    assert info.value.check is check


def test_a_cross_maintenance_disagreement_is_flagged() -> None:
    state = load("hyperliquid_clearinghouse_state_docs.json")
    state["crossMaintenanceMarginUsed"] = "0.5"
    check = check_hyperliquid(hl_figures(state))
    assert [d.field for d in check.discrepancies] == ["crossMaintenanceMarginUsed"]
    assert check.discrepancies[0].abs_diff == pytest.approx(0.5)


def test_dydx_payload_agrees_with_the_indexers_formula() -> None:
    fig = dydx_figures(load("dydx_subaccount_btc_short.json"))
    check = check_dydx(fig).raise_for_disagreement()
    assert check.fields == ("equity", "freeCollateral")
    assert check.computed.tolist() == pytest.approx([1635.19293616, 667.8943257632], abs=1e-6)
    health = dydx_health(fig)
    # maintenance = 0.407 × 118,832.75312 × 0.012
    assert health.maintenance_usd.tolist() == pytest.approx([0.407 * 118_832.75312 * 0.012])
    assert health.health[0] == pytest.approx(1635.19293616 / (0.407 * 118_832.75312 * 0.012))
    # The short's liquidation price: equity(P) = 50,000.123456 − 0.407 P = 0.407 × 0.012 P
    assert health.liquidation_px.tolist() == pytest.approx([50_000.123456 / (0.407 * 1.012)])


def test_dydx_equity_disagreement_is_flagged() -> None:
    sub = load("dydx_subaccount_btc_short.json")
    sub["subaccount"]["equity"] = "1635.20293616"
    check = check_dydx(dydx_figures(sub))
    assert [d.field for d in check.discrepancies] == ["equity"]
    with pytest.raises(VenueDisagreementError, match="equity"):
        check.raise_for_disagreement()


def test_check_against_venue_treats_nan_as_none() -> None:
    c = check_against_venue(["a", "b", "c", "d"], [np.nan, np.nan, 1.0, 1.0], [np.nan, 2.0, np.nan, 1.05], 0.1)
    assert [d.field for d in c.discrepancies] == ["b", "c"]
    with pytest.raises(ValueError, match="same length"):
        check_against_venue(["a"], [1.0, 2.0], [1.0, 2.0], 0.1)


def test_an_account_without_positions_is_healthy_and_agrees_with_the_venue() -> None:
    from riskcore.venues.hyperliquid.health import HyperliquidFigures, check_hyperliquid, hyperliquid_health

    empty = np.zeros(0)
    fig = HyperliquidFigures(
        wallet="0x" + "00" * 20, coin=(), szi=empty, position_value_usd=empty, entry_px=empty,
        is_cross=np.zeros(0, dtype=bool), isolated_raw_usd=empty, tier_lower_usd=np.zeros((0, 1)),
        tier_max_leverage=np.zeros((0, 1)), cross_raw_usd=1_000.0, reported_cross_account_value_usd=1_000.0,
        reported_cross_maintenance_usd=0.0, reported_liquidation_px=empty, reported_margin_used_usd=empty,
        reported_unrealized_pnl_usd=empty,
    )
    health = hyperliquid_health(fig)
    assert float(health.equity_usd.sum()) == 1_000.0
    assert float(health.maintenance_usd.sum()) == 0.0
    assert not health.any_liquidatable
    assert check_hyperliquid(fig).ok
