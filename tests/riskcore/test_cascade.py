"""Cascade replay on synthetic paths: a spike liquidates the hedge, the crash that follows hits the naked venue."""

from __future__ import annotations

import numpy as np
import pytest

from riskcore.book import Book, Kind, PerpAccountSpec, WalletSpec
from riskcore.cascade import replay
from riskcore.margin import revalue
from riskcore.reference import SyntheticScenarios, synthetic_book
from riskcore.venues.aave_v3 import account_spec as aave_account
from riskcore.venues.morpho_blue import market_spec as morpho_market

PRICES = {"ETH": 2000.0, "USDC": 1.0}
AAVE = aave_account(collateral={"ETH": (10.0, 0.825)}, debt={"USDC": 12_000.0}, bonus=0.05)  # HF 1.375
SHORT = PerpAccountSpec(cash_usd=23_000.0, positions={"ETH": (-10.0, 0.02)})  # equity 3,000; liq above 2,254.90


def path(*eth: float) -> np.ndarray:
    return np.array([[p, 1.0] for p in eth])


def test_spike_removes_the_hedge_and_the_crash_liquidates_aave() -> None:
    book = Book.from_wallets([WalletSpec("w", [AAVE, SHORT])], PRICES)
    res = replay(book, path(2_000.0, 2_280.0, 1_400.0))
    # step 1, ETH 2,280: perp E = 23,000 − 22,800 = 200 < M = 456 → closed, the 200 left is lost.
    #   Aave HF = 22,800 × 0.825 / 12,000 = 1.5675. Wallet equity = (22,800 − 12,000) + 0 = 10,800.
    # step 2, ETH 1,400: Aave C = 14,000, W = 11,550 < 12,000, HF 0.9625 > 0.95 → 50%: repaid 6,000,
    #   seized 6,300, penalty 300; C = 7,700, D = 6,000, HF = 6,352.5 / 6,000 = 1.05875 → healthy.
    #   The short is gone, so nothing offsets the fall: equity = 7,700 − 6,000 = 1,700.
    assert [(e.step, e.venue, e.rule) for e in res.events] == [(1, "perp", "PERP"), (2, "lending", "LENDING")]
    perp_ev, aave_ev = res.events
    assert perp_ev.loss_usd == pytest.approx(200.0)
    assert perp_ev.closed
    assert aave_ev.loss_usd == pytest.approx(300.0)
    assert aave_ev.repaid_usd == pytest.approx(6_000.0)
    assert aave_ev.seized_usd == pytest.approx(6_300.0)
    assert not aave_ev.closed
    np.testing.assert_allclose(res.equity_usd[:, 0], [11_000.0, 10_800.0, 1_700.0])
    np.testing.assert_allclose(res.liquidation_loss_usd[:, 0], [0.0, 200.0, 500.0])
    after = res.book
    coll = after.pos_quantity[after.pos_kind == Kind.COLLATERAL]
    debt = after.pos_quantity[after.pos_kind == Kind.DEBT]
    size = after.pos_quantity[after.pos_kind == Kind.PERP]
    np.testing.assert_allclose([coll[0], debt[0], size[0]], [5.5, -6_000.0, 0.0])

    # The same end price as one shock (−30%): the short is still there and pays +6,000; only Aave's 300 is lost.
    sc = SyntheticScenarios(("ETH -30%",), ("ETH", "USDC"), np.array([[0.7, 1.0]]), np.zeros(1), 1.0, np.ones(1))
    shock = revalue(book, sc)
    assert shock.pnl_usd[0, 0] == pytest.approx(-300.0)
    assert res.equity_usd[-1, 0] - res.equity_usd[0, 0] == pytest.approx(-9_300.0)


def test_without_the_spike_the_hedge_holds() -> None:
    book = Book.from_wallets([WalletSpec("w", [AAVE, SHORT])], PRICES)
    res = replay(book, path(2_000.0, 1_700.0, 1_400.0))
    assert [(e.step, e.venue) for e in res.events] == [(2, "lending")]
    # 11,000 at the start; at 1,400: Aave 1,700 after its 300 penalty, perp 23,000 − 14,000 = 9,000
    np.testing.assert_allclose(res.equity_usd[:, 0], [11_000.0, 11_000.0, 10_700.0])


def test_aave_liquidated_again_as_the_price_keeps_falling() -> None:
    book = Book.from_wallets([WalletSpec("w", [AAVE])], PRICES)
    res = replay(book, path(1_400.0, 1_400.0, 1_000.0, 600.0))
    steps = [e.step for e in res.events]
    assert steps[0] == 0
    assert 1 not in steps
    assert 2 in steps
    # at 1,000 after step 0: C = 5.5 × 1,000 = 5,500, W = 4,537.5 < D 6,000, HF 0.756 → 100%:
    # 6,300 > 5,500 → all collateral seized, repaid 5,500 / 1.05, the rest of the debt is bad debt
    ev = next(e for e in res.events if e.step == 2)
    assert ev.seized_usd == pytest.approx(5_500.0)
    assert ev.repaid_usd == pytest.approx(5_500.0 / 1.05)
    assert ev.closed
    assert 3 not in steps  # nothing left to seize


def test_morpho_and_many_wallets() -> None:
    rng = np.random.default_rng(3)
    book = synthetic_book(rng, 20, positions_per_wallet=20, n_underlyings=5)
    crash = np.where(book.stable[None, :], 1.0, np.linspace(1.0, 0.4, 12)[:, None])  # risky prices fall 60%
    res = replay(book, book.price_usd[None, :] * crash)
    assert res.equity_usd.shape == (12, 20)
    assert len(res.events) > 0
    assert all(e.loss_usd >= 0 for e in res.events)
    assert np.all(np.diff(res.liquidation_loss_usd, axis=0) >= 0)
    # a closed perp account has nothing left to liquidate
    perp_accounts = [e.account for e in res.events if e.rule == "PERP"]
    assert len(perp_accounts) == len(set(perp_accounts))
    assert np.all(res.book.pos_quantity[np.isin(res.book.pos_account, perp_accounts)] == 0)


def test_morpho_market_in_a_cascade() -> None:
    spec = morpho_market("ETH", 5.0, "USDC", 8_000.0, 0.86)
    book = Book.from_wallets([WalletSpec("w", [spec])], PRICES)
    res = replay(book, path(2_000.0, 1_400.0, 1_000.0))
    assert [(e.step, e.rule) for e in res.events] == [(1, "ISOLATED")]
    assert res.events[0].loss_usd == pytest.approx(294.0)
    # all 5 ETH seized for 6,706 of the debt; 1,294 of debt left (bad debt counted), no collateral
    np.testing.assert_allclose(res.equity_usd[:, 0], [2_000.0, -1_294.0, -1_294.0])


def test_path_shape_is_checked() -> None:
    book = Book.from_wallets([WalletSpec("w", [AAVE])], PRICES)
    with pytest.raises(ValueError, match="shape"):
        replay(book, np.ones((3, 5)))


def test_account_health_along_the_path_is_each_venues_own_rule_before_the_steps_liquidations() -> None:
    book = Book.from_wallets([WalletSpec("w", [AAVE, SHORT])], PRICES)
    res = replay(book, path(2_000.0, 1_900.0, 2_280.0, 1_400.0))
    aave, perp = 0, 1
    # Aave: 10 ETH × price × 0.825 / 12,000; the short: (23,000 − 10 × price) / (10 × price × 0.02).
    np.testing.assert_allclose(res.account_health[:3, aave], [1.375, 1.30625, 1.5675])
    np.testing.assert_allclose(res.account_health[:3, perp], [3_000 / 400, 4_000 / 380, 200 / 456])
    assert res.account_health[3, perp] == np.inf  # closed at step 2: nothing owed any more
    assert res.account_health[3, aave] == pytest.approx(0.9625)  # before its liquidation at that step
