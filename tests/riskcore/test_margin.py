"""Liquidation-aware scenario margin: hand-worked hedged wallets, venue mechanics, the plain-Python reference,
uniform moves by bisection against the analytic liquidation price, and per-asset liquidation prices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riskcore import perp as perp_health
from riskcore.book import (
    Book,
    Kind,
    LpSpec,
    PerpAccountSpec,
    SpotSpec,
    WalletSpec,
)
from riskcore.margin import (
    assess,
    isolated_liquidation,
    lending_liquidation,
    liquidation_prices,
    perp_liquidation_loss,
    prepare,
    revalue,
    scenario_multipliers,
    unified_health,
    uniform_move,
)
from riskcore.reference import SyntheticScenarios, revalue_reference, synthetic_book, synthetic_scenarios
from riskcore.venues.aave_v3 import CLOSE_FACTOR, FULL_CLOSE_HF
from riskcore.venues.aave_v3 import account_spec as aave_account
from riskcore.venues.morpho_blue import health as morpho_health
from riskcore.venues.morpho_blue import market_spec as morpho_market

PRICES = {"ETH": 2000.0, "USDC": 1.0}


def scenarios(moves: list[float], weights: list[float] | None = None) -> SyntheticScenarios:
    """ETH moves (−0.4 = −40%), USDC unchanged."""
    s = len(moves)
    return SyntheticScenarios(
        names=tuple(f"ETH {m:+.0%}" for m in moves),
        underlyings=("ETH", "USDC"),
        price_multipliers=np.array([[1.0 + m, 1.0] for m in moves]),
        vol_shift=np.zeros(s),
        horizon_days=1.0,
        weights=np.ones(s) if weights is None else np.asarray(weights),
    )


AAVE = aave_account(collateral={"ETH": (10.0, 0.825)}, debt={"USDC": 10_000.0}, bonus=0.05)
SHORT = PerpAccountSpec(cash_usd=26_000.0, positions={"ETH": (-10.0, 0.02)})  # equity 6,000


# --- hand-worked cases --------------------------------------------------------------------------------
def test_the_hedge_saves_the_wallet() -> None:
    # Wallet "hedged": Aave 10 ETH (LT 0.825, bonus 5%) against 10,000 USDC (HF 1.65) + 10 ETH short perp
    # with 6,000 equity. Wallet "naked": the same Aave account alone.
    book = Book.from_wallets([WalletSpec("hedged", [AAVE, SHORT]), WalletSpec("naked", [AAVE])], PRICES)
    res = revalue(book, scenarios([-0.40, 0.25]))
    # ETH −40% → 1,200: Aave C = 12,000, W = 9,900 < D = 10,000, HF 0.99 > 0.95 → close factor 50%:
    #   repaid 5,000, seized 5,250 → C 6,750, W 5,568.75, D 5,000, HF 1.11375 → healthy; penalty 5,000 × 5% = 250.
    #   Aave P&L −8,000; perp E = 26,000 − 12,000 = 14,000 ≥ M = 240 → +8,000.
    # ETH +25% → 2,500: Aave +5,000; perp E = 1,000 ≥ M = 500: −5,000.
    np.testing.assert_allclose(res.pnl_linear_usd, [[0.0, 0.0], [-8_000.0, 5_000.0]], atol=1e-9)
    np.testing.assert_allclose(res.liquidation_loss_usd, [[250.0, 0.0], [250.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(res.pnl_usd, [[-250.0, 0.0], [-8_250.0, 5_000.0]], atol=1e-9)
    np.testing.assert_array_equal(res.n_liquidated, [[1, 0], [1, 0]])

    h = unified_health(book, res)
    np.testing.assert_allclose(h.equity_usd, [16_000.0, 10_000.0])
    np.testing.assert_allclose(h.margin_usd, [250.0, 8_250.0])
    np.testing.assert_allclose(h.health, [64.0, 10_000.0 / 8_250.0])
    # per venue alone: Aave 8,250 (−40%), perp 5,000 (+25%) → Σ 13,250; netting benefit 13,000
    np.testing.assert_allclose(h.venue_margin_sum_usd, [13_250.0, 8_250.0])
    np.testing.assert_allclose(h.netting_benefit_usd, [13_000.0, 0.0])
    assert res.worst_scenario.tolist() == [0, 0]


def test_a_liquidated_hedge_leaves_the_other_venue_exposed() -> None:
    # Same Aave account, but the short perp has only 1,000 of equity (cash 21,000).
    thin = PerpAccountSpec(cash_usd=21_000.0, positions={"ETH": (-10.0, 0.02)}, venue="hyperliquid")
    book = Book.from_wallets([WalletSpec("w", [AAVE, thin])], PRICES)
    res = revalue(book, scenarios([0.08, -0.40]))
    # +8% → 2,160: perp E = 21,000 − 21,600 = −600 < M = 432 → closed, loss max(E, 0) = 0 (bad debt stays in P&L);
    # Aave +1,600; linear P&L 0.
    # −40% → 1,200: Aave liquidated as above (250); perp E = 9,000 fine; P&L −250.
    np.testing.assert_allclose(res.pnl_usd, [[0.0, -250.0]], atol=1e-9)
    acc = res.account_liquidated(book.n_accounts)
    rules = [book.venues[v] for v in book.acc_venue]
    assert acc[rules.index("hyperliquid")].tolist() == [True, False]
    assert acc[rules.index("lending")].tolist() == [False, True]


def test_perp_penalty_is_the_remaining_margin() -> None:
    # Long 10 ETH, cash −17,000 → equity 3,000; mmr 5%. ETH −10% → 1,800: E = 1,000 < M = 900? no (1,000 ≥ 900).
    # ETH −11% → 1,780: E = 800 < M = 890 → closed, loss 800.
    book = Book.from_wallets(
        [WalletSpec("w", [PerpAccountSpec(cash_usd=-17_000.0, positions={"ETH": (10.0, 0.05)})])], PRICES
    )
    res = revalue(book, scenarios([-0.10, -0.11]))
    np.testing.assert_allclose(res.pnl_linear_usd, [[-2_000.0, -2_200.0]])
    np.testing.assert_allclose(res.liquidation_loss_usd, [[0.0, 800.0]], atol=1e-9)


def test_morpho_penalty() -> None:
    # 5 ETH against 8,000 USDC at LLTV 86%: ETH −30% → 1,400: C = 7,000, C × LLTV = 6,020 < 8,000.
    # LIF = 1 / (1 − 0.3 × 0.14) = 1 / 0.958; repaid = min(8,000, 7,000 / LIF) = 6,706, all collateral seized;
    # loss = repaid × (LIF − 1) = 7,000 × (1 − 1/LIF) = 7,000 × 0.042 = 294.
    spec = morpho_market("ETH", 5.0, "USDC", 8_000.0, 0.86)
    book = Book.from_wallets([WalletSpec("w", [spec])], PRICES)
    assert book.acc_lif[0] == pytest.approx(1 / 0.958, rel=1e-15)
    res = revalue(book, scenarios([-0.30]))
    np.testing.assert_allclose(res.liquidation_loss_usd, [[294.0]], rtol=1e-12)
    np.testing.assert_allclose(res.pnl_linear_usd, [[-3_000.0]])


# --- venue mechanics ----------------------------------------------------------------------------------
def test_aave_close_factor_bonus_and_collateral_cap() -> None:
    # HF 0.99 → 50% then healthy
    out = lending_liquidation([12_000.0], [9_900.0], [10_000.0], 0.05, CLOSE_FACTOR, FULL_CLOSE_HF)
    assert out.loss_usd[0] == pytest.approx(250.0)
    assert out.calls[0] == 1
    assert out.debt_left_usd[0] == pytest.approx(5_000.0)
    # HF exactly 0.95 → 100%: repaid 10,000, seized 10,500 of 12,000 ... W = 9,500
    out = lending_liquidation([12_000.0], [9_500.0], [10_000.0], 0.05, CLOSE_FACTOR, FULL_CLOSE_HF)
    assert out.repaid_usd[0] == pytest.approx(10_000.0)
    assert out.loss_usd[0] == pytest.approx(500.0)
    assert out.debt_left_usd[0] == 0.0
    # collateral short: C 10,000 < 10,000 × 1.05 → all seized, repaid 10,000 / 1.05
    out = lending_liquidation([10_000.0], [8_250.0], [10_000.0], 0.05, CLOSE_FACTOR, FULL_CLOSE_HF)
    assert out.seized_usd[0] == 10_000.0
    assert out.repaid_usd[0] == pytest.approx(10_000.0 / 1.05)
    assert out.loss_usd[0] == pytest.approx(10_000.0 / 1.05 * 0.05)
    assert out.collateral_left_usd[0] == 0.0
    # a 50% call that leaves HF < 1 is followed by another: LT 0.97, bonus 5%: HF' = 2 × 0.99 − 1.05 × 0.97
    out = lending_liquidation([10_206.0], [9_900.0], [10_000.0], 0.05, CLOSE_FACTOR, FULL_CLOSE_HF)
    assert out.calls[0] >= 2
    # healthy: nothing
    out = lending_liquidation([20_000.0], [16_500.0], [10_000.0], 0.05, CLOSE_FACTOR, FULL_CLOSE_HF)
    assert out.loss_usd[0] == 0.0
    assert out.calls[0] == 0


def test_morpho_and_perp_mechanics() -> None:
    lif = 1 / (1 - 0.3 * (1 - 0.86))
    out = isolated_liquidation([10_000.0], [8_600.0], [9_000.0], lif)
    assert out.repaid_usd[0] == pytest.approx(9_000.0)
    assert out.loss_usd[0] == pytest.approx(9_000.0 * (lif - 1))
    assert out.collateral_left_usd[0] == pytest.approx(10_000.0 - 9_000.0 * lif)
    assert isolated_liquidation([10_000.0], [8_600.0], [8_000.0], lif).loss_usd[0] == 0.0
    np.testing.assert_array_equal(perp_liquidation_loss([800.0, -50.0, 1_000.0], [890.0, 10.0, 900.0]), [800, 0, 0])


# --- the plain-Python reference agrees ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_equals_reference_on_random_books(seed: int) -> None:
    rng = np.random.default_rng(seed)
    book = synthetic_book(rng, 40, positions_per_wallet=30, n_underlyings=8)
    sc = synthetic_scenarios(rng, book.underlyings, 37)
    res = revalue(book, sc, chunk_elements=3_000)  # several chunks
    ref = revalue_reference(book, scenario_multipliers(book, sc), sc.weights)
    assert res.n_liquidated.sum() > 0  # the rules are exercised
    for name in ("pnl_linear_usd", "liquidation_loss_usd", "pnl_usd", "worst_weighted_loss_usd"):
        np.testing.assert_allclose(getattr(res, name), getattr(ref, name), rtol=1e-9, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(res.n_liquidated, ref.n_liquidated)
    np.testing.assert_array_equal(res.worst_scenario, ref.worst_scenario)
    venue = [ref.venue_worst_weighted_loss_usd[(w, v)] for w, v in zip(res.group_wallet, res.group_venue, strict=True)]
    np.testing.assert_allclose(res.group_worst_weighted_loss_usd, venue, rtol=1e-9, atol=1e-6)
    # the sparse per-account record sums to the per-wallet losses
    per_wallet = np.zeros_like(res.liquidation_loss_usd)
    np.add.at(per_wallet, (book.acc_wallet[res.liq_account], res.liq_scenario), res.liq_loss_usd)
    np.testing.assert_allclose(per_wallet, res.liquidation_loss_usd, atol=1e-9)
    # a prepared book gives the same
    again = revalue(prepare(book), sc)
    np.testing.assert_allclose(again.pnl_usd, res.pnl_usd, rtol=1e-12, atol=1e-6)


def test_netting_benefit_is_never_negative() -> None:
    rng = np.random.default_rng(7)
    book = synthetic_book(rng, 200, positions_per_wallet=20, n_underlyings=6)
    h = unified_health(book, revalue(book, synthetic_scenarios(rng, book.underlyings, 50)))
    assert np.all(h.netting_benefit_usd >= -1e-6 * np.maximum(1.0, h.venue_margin_sum_usd))
    assert np.all(h.margin_usd >= 0)


def test_lp_and_spot_are_revalued_not_liquidated() -> None:
    lp = LpSpec("ETH", "USDC", liquidity=1_000.0, price_lower=1_500.0, price_upper=2_500.0)
    book = Book.from_wallets([WalletSpec("w", [lp, SpotSpec("ETH", 2.0)])], PRICES)
    res = revalue(book, scenarios([-0.5, 0.0, 0.5]))
    # below the range at 1,000: all token0, x = L (1/√1500 − 1/√2500); at 2,000: x, y on the curve
    s0, sa, sb = math.sqrt(2_000.0), math.sqrt(1_500.0), math.sqrt(2_500.0)
    v_now = 1_000.0 * (1 / s0 - 1 / sb) * 2_000.0 + 1_000.0 * (s0 - sa)
    v_low = 1_000.0 * (1 / sa - 1 / sb) * 1_000.0
    v_high = 1_000.0 * (sb - sa)
    np.testing.assert_allclose(res.pnl_usd[0], [v_low - v_now - 2_000.0, 0.0, v_high - v_now + 2_000.0], rtol=1e-12)
    assert res.liq_account.size == 0
    assert book.pos_kind.tolist().count(Kind.LP) == 1


def test_works_with_the_scenario_set_of_riskcore_scenarios() -> None:
    scen = pytest.importorskip("riskcore.scenarios")
    sset = scen.user_scenarios(["ETH"], {"crash": {"ETH": -0.40}, "rally": {"ETH": 0.25}})
    book = Book.from_wallets([WalletSpec("hedged", [AAVE, SHORT])], PRICES)
    res = revalue(book, sset)  # USDC is stable, so the set need not name it
    np.testing.assert_allclose(res.pnl_usd, [[-250.0, 0.0]], atol=1e-9)


def test_a_risky_underlying_missing_from_the_scenarios_is_an_error() -> None:
    book = Book.from_wallets([WalletSpec("w", [AAVE])], {"ETH": 2000.0, "USDC": 1.0, "BTC": 60_000.0})
    with pytest.raises(KeyError, match="BTC"):
        revalue(book, scenarios([-0.1]))


# --- smallest uniform move and liquidation prices -------------------------------------------------------
def test_uniform_move_by_bisection_equals_the_analytic_liquidation_price() -> None:
    book = Book.from_wallets([WalletSpec("w", [AAVE])], PRICES)
    mv = uniform_move(book)
    # HF(k) = 10 × 2,000 k × 0.825 / 10,000 = 1 at k = 10,000 / 16,500
    k_star = 10_000.0 / 16_500.0
    assert mv.down[0] == pytest.approx(1.0 - k_star, rel=1e-13)
    assert mv.down_account[0] == 0
    assert math.isnan(mv.up[0])
    assert mv.up_account[0] == -1
    lp = liquidation_prices(book)
    eth = lp.underlying.tolist().index(book.underlyings.index("ETH"))
    assert lp.price_usd[eth] == pytest.approx(2_000.0 * k_star, rel=1e-13)  # = 10,000 / (10 × 0.825)
    assert lp.side[eth] == -1
    usdc = lp.underlying.tolist().index(book.underlyings.index("USDC"))
    assert lp.price_usd[usdc] == pytest.approx(1.65, rel=1e-13)  # the debt would have to be worth 16,500
    assert lp.side[usdc] == 1


def test_first_venue_to_liquidate() -> None:
    thin = PerpAccountSpec(cash_usd=21_000.0, positions={"ETH": (-10.0, 0.02)})  # liquidated above 21,000 / 10.2
    book = Book.from_wallets([WalletSpec("w", [AAVE, thin])], PRICES)
    mv = uniform_move(book)
    venue = book.venues[book.acc_venue[mv.up_account[0]]]
    assert venue == "perp"
    assert mv.up[0] == pytest.approx(21_000.0 / 10.2 / 2_000.0 - 1.0, rel=1e-12)
    assert book.venues[book.acc_venue[mv.down_account[0]]] == "lending"
    assert mv.down[0] == pytest.approx(1.0 - 10_000.0 / 16_500.0, rel=1e-12)


def test_liquidation_prices_match_the_venue_modules() -> None:
    morpho = morpho_market("ETH", 5.0, "USDC", 8_000.0, 0.86)
    perp = PerpAccountSpec(cash_usd=-15_000.0, positions={"ETH": (10.0, 0.0125), "BTC": (-0.1, 0.02)})
    prices = {"ETH": 2000.0, "BTC": 60_000.0, "USDC": 1.0}
    book = Book.from_wallets([WalletSpec("w", [morpho, perp])], prices)
    lp = liquidation_prices(book)
    got = {(book.venues[book.acc_venue[a]], book.underlyings[u]): p
           for a, u, p in zip(lp.account, lp.underlying, lp.price_usd, strict=True)}
    assert got[("isolated", "ETH")] == pytest.approx(float(morpho_health.liquidation_price(5.0, 8_000.0, 0.86)))
    pb = perp_health.PerpBook.build([10.0, -0.1], [2000.0, 60_000.0], [0, 0], [-15_000.0], [0.0], [0.0125, 0.02])
    expected = perp_health.liquidation_price(pb)
    assert got[("perp", "ETH")] == pytest.approx(expected[0], rel=1e-12)
    assert got[("perp", "BTC")] == pytest.approx(expected[1], rel=1e-12)


def test_assess_bundles_everything() -> None:
    book = Book.from_wallets([WalletSpec("hedged", [AAVE, SHORT])], PRICES)
    a = assess(book, scenarios([-0.40, 0.25]))
    assert a.health.health[0] == pytest.approx(64.0)
    assert a.moves.down_account[0] >= 0
    assert a.liquidation_prices.price_usd.shape == a.liquidation_prices.account.shape


def test_book_validation() -> None:
    with pytest.raises(ValueError, match="collateral quantities"):
        Book.from_arrays(
            wallets=["w"], underlyings=["ETH"], venues=["aave"], price_usd=[2000.0],
            pos_account=[0], pos_underlying=[0], pos_kind=[int(Kind.COLLATERAL)], pos_quantity=[-1.0],
            acc_wallet=[0], acc_venue=[0], acc_rule=[1], pos_threshold=[0.8],
        )
    with pytest.raises(ValueError, match="in a PERP account"):
        Book.from_arrays(
            wallets=["w"], underlyings=["ETH"], venues=["hl"], price_usd=[2000.0],
            pos_account=[0], pos_underlying=[0], pos_kind=[int(Kind.DEBT)], pos_quantity=[-1.0],
            acc_wallet=[0], acc_venue=[0], acc_rule=[3],
        )


def test_wallet_slices_revalue_like_the_whole_book() -> None:
    rng = np.random.default_rng(11)
    book = synthetic_book(rng, 30, positions_per_wallet=20, n_underlyings=6)
    sc = synthetic_scenarios(rng, book.underlyings, 9)
    whole = revalue(book, sc)
    parts = [revalue(book.wallet_slice(a, b), sc) for a, b in ((0, 11), (11, 30))]
    np.testing.assert_allclose(np.vstack([p.pnl_usd for p in parts]), whole.pnl_usd, rtol=1e-12, atol=1e-6)
    np.testing.assert_array_equal(np.vstack([p.n_liquidated for p in parts]), whole.n_liquidated)
