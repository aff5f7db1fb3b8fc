"""The headline may never look safer than the first venue liquidation implies (issue 12, defect 2).

The invariant is stated in :mod:`aggregator.risk`'s module notes; with ``S`` the scenario set used for unified
health (built here by the product's own :func:`aggregator.risk.unified_scenarios` / :func:`assess_book`, market
data included), ``mf`` the maintenance factor, ``E`` the wallet's equity, ``w_s`` and ``L_s`` a scenario's weight
and liquidation-aware loss, for every wallet of every random book:

1. every ``s`` of ``S`` that liquidates one of the wallet's venue accounts has ``margin ≥ mf × w_s × L_s``, so
   ``unified health ≤ E / (mf × w_s × L_s)`` when ``E, L_s > 0``;
2. when ``first_liquidation.nearest`` (factor ``f`` alone moved by ``m``) lies strictly inside the range ``S``
   moves ``f`` alone that way, the scenario of ``S`` at the end of that range liquidates that venue, and the
   unified health is finite and within the bound of 1.;
3. (no options here) a wallet of which ``S`` liquidates an account with a positive penalty has a finite unified
   health — never ∞;
4. where a wallet holds one risky factor, the uniform moves (``first_liquidation.down`` / ``up``) and the nearest
   single-factor move agree: the nearest is never farther than either, and equals one when it is on that factor.

Books mix Aave accounts (stable, risky and basis collateral and debt), Morpho markets, perp accounts, Uniswap v3
ranges and tokens held; some wallets hold stablecoins only, some only a basis (wstETH against WETH, WBTC against
BTC). Every test is derandomized: CI runs the same examples every time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aggregator.risk import PEG_FLOOR_DOWN, RiskInputs, assess_book, risk_documents, unified_scenarios
from riskcore.assets import FactorKind
from riskcore.book import (
    AccountSpec,
    Book,
    IsolatedMarketSpec,
    LendingAccountSpec,
    LpSpec,
    PerpAccountSpec,
    SpotSpec,
    WalletSpec,
)
from riskcore.factors import factor_model
from riskcore.venues.aave_v3 import account_spec as aave_account
from riskcore.venues.morpho_blue import market_spec as morpho_market

PRICES = {"ETH": 4_000.0, "BTC": 90_000.0, "LINK": 30.0, "AAVE": 300.0, "stETH": 3_990.0, "wstETH": 4_720.0,
          "cbETH": 4_310.0, "WBTC": 89_950.0, "USDC": 1.0, "DAI": 0.9998, "USDT": 1.0003}
RISKY = ("ETH", "BTC", "LINK", "AAVE")
BASIS = {"stETH": "ETH", "wstETH": "ETH", "cbETH": "ETH", "WBTC": "BTC"}
STABLES = ("USDC", "DAI", "USDT")
ALL = tuple(PRICES)
LLTVS = (0.77, 0.86, 0.915, 0.945, 0.965)
PROPS = settings(max_examples=300, deadline=None, derandomize=True)

usd = st.floats(1_000.0, 100_000.0)


@st.composite
def aave(draw: st.DrawFn, pool: tuple[str, ...]) -> LendingAccountSpec:
    coll = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
    debt = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True))
    lts = {a: draw(st.floats(0.6, 0.985)) for a in coll}
    value = {a: draw(usd) for a in coll}
    hf = draw(st.floats(1.001, 3.0))
    owed = sum(value[a] * lts[a] for a in coll) / hf
    split = np.array([draw(st.floats(0.1, 1.0)) for _ in debt])
    split /= split.sum()
    return aave_account({a: (value[a] / PRICES[a], lts[a]) for a in coll},
                        {a: owed * float(w) / PRICES[a] for a, w in zip(debt, split, strict=True)},
                        bonus=draw(st.floats(0.005, 0.1)), venue="aave_v3")


@st.composite
def basis_loop(draw: st.DrawFn) -> LendingAccountSpec:
    """A staked or wrapped token against its own underlying (e-mode LT 93–97 %): only its basis moves the HF."""
    token = draw(st.sampled_from(tuple(BASIS)))
    lt = draw(st.floats(0.93, 0.97))
    value = draw(usd)
    owed = value * lt / draw(st.floats(1.001, 1.2))
    return aave_account({token: (value / PRICES[token], lt)}, {BASIS[token]: owed / PRICES[BASIS[token]]},
                        bonus=draw(st.floats(0.01, 0.075)), venue="aave_v3")


@st.composite
def morpho(draw: st.DrawFn, pool: tuple[str, ...]) -> IsolatedMarketSpec:
    coll, loan = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2, unique=True))
    lltv = draw(st.sampled_from(LLTVS))
    value = draw(usd)
    owed = value * lltv / draw(st.floats(1.001, 2.5))
    return morpho_market(coll, value / PRICES[coll], loan, owed / PRICES[loan], lltv, venue="morpho_blue")


@st.composite
def perp(draw: st.DrawFn) -> PerpAccountSpec:
    assets = draw(st.lists(st.sampled_from(("ETH", "BTC", "LINK")), min_size=1, max_size=2, unique=True))
    mmr = draw(st.floats(0.005, 0.05))
    sizes = {a: draw(usd) * draw(st.sampled_from((-1.0, 1.0))) / PRICES[a] for a in assets}
    notional = sum(abs(q) * PRICES[a] for a, q in sizes.items())
    equity = notional / draw(st.floats(1.0, 0.9 / mmr))
    cash = equity - sum(q * PRICES[a] for a, q in sizes.items())
    return PerpAccountSpec(cash, {a: (q, mmr) for a, q in sizes.items()},
                           venue=draw(st.sampled_from(("hyperliquid", "dydx_v4"))))


@st.composite
def lp(draw: st.DrawFn) -> LpSpec:
    t0 = draw(st.sampled_from(("ETH", "BTC", "wstETH", "WBTC", "LINK")))
    t1 = draw(st.sampled_from(STABLES))
    ratio = PRICES[t0] / PRICES[t1]
    lo, hi = ratio * (1 - draw(st.floats(0.01, 0.5))), ratio * (1 + draw(st.floats(0.01, 1.0)))
    s, sa, sb = math.sqrt(ratio), math.sqrt(lo), math.sqrt(hi)
    per_l = (1 / s - 1 / sb) * PRICES[t0] + (s - sa) * PRICES[t1]
    return LpSpec(t0, t1, draw(usd) / per_l, lo, hi, venue="uniswap_v3")


@st.composite
def spot(draw: st.DrawFn, pool: tuple[str, ...]) -> SpotSpec:
    a = draw(st.sampled_from(pool))
    return SpotSpec(a, draw(usd) / PRICES[a])


@st.composite
def wallet(draw: st.DrawFn, i: int) -> WalletSpec:
    kind = draw(st.sampled_from(("mixed", "mixed", "stable-only", "basis-only")))
    event(f"wallet kind: {kind}")
    accounts: list[AccountSpec]
    if kind == "stable-only":
        accounts = draw(st.lists(st.one_of(aave(STABLES), morpho(STABLES), spot(STABLES)), min_size=1, max_size=3))
    elif kind == "basis-only":
        accounts = draw(st.lists(basis_loop(), min_size=1, max_size=2))
    else:
        accounts = draw(st.lists(st.one_of(aave(ALL), morpho(ALL), perp(), lp(), spot(ALL)), min_size=1,
                                 max_size=4))
    # one account per venue rule instance: several Aave specs of one wallet on one venue would be one account
    # on the chain; keep one per venue (Morpho markets are separate accounts on the chain too)
    seen: set[str] = set()
    kept: list[AccountSpec] = []
    for acc in accounts:
        if isinstance(acc, (LendingAccountSpec, PerpAccountSpec)):
            if acc.venue in seen:
                continue
            seen.add(acc.venue)
        kept.append(acc)
    return WalletSpec(f"w{i}", tuple(kept))


@st.composite
def books(draw: st.DrawFn) -> RiskInputs:
    n = draw(st.integers(1, 3))
    wallets = [draw(wallet(i)) for i in range(n)]
    used = {n for w in wallets for a in w.accounts for n in _assets(a)}
    prices = {a: p for a, p in PRICES.items() if a in used}
    model = factor_model(tuple(prices))
    stable = [u for u, s in zip(model.underlyings, model.stable.tolist(), strict=True) if s]
    book = Book.from_wallets(wallets, prices, stable=stable)
    return RiskInputs(tuple(book.wallets), book, book.underlyings, frozenset(stable), None, model)


def _assets(acc: AccountSpec) -> set[str]:
    if isinstance(acc, LendingAccountSpec):
        return set(acc.collateral) | set(acc.debt)
    if isinstance(acc, IsolatedMarketSpec):
        return {acc.collateral_asset, acc.loan_asset}
    if isinstance(acc, PerpAccountSpec):
        return set(acc.positions)
    if isinstance(acc, LpSpec):
        return {acc.token0, acc.token1}
    if isinstance(acc, SpotSpec):
        return {acc.asset}
    raise TypeError(acc)


def _check(inputs: RiskInputs) -> None:
    book = inputs.book
    model = inputs.factor_model
    uni = unified_scenarios(inputs)
    result, scenarios, extras = assess_book(inputs)
    assert scenarios.names == uni.book_set.names  # the product's own set
    docs = risk_documents(inputs, result, scenarios, extras)
    res, health = result.scenarios, result.health
    mf = health.maintenance_factor
    weights = scenarios.weights
    loss = -res.pnl_usd  # (W, S)
    liq_wallet = book.acc_wallet[res.liq_account]
    down, up = model.single_factor_moves(uni.factor_set)
    # every factor the book holds is moved alone both ways
    for f, kind in enumerate(model.kinds):
        assert down[f] > 0, model.factors[f]
        assert up[f] > 0, model.factors[f]
        if kind is FactorKind.PEG:
            assert down[f] >= PEG_FLOOR_DOWN  # at least the floor; USDC's own history gives 12.3 %
    for w, doc in enumerate(docs):
        equity = float(health.equity_usd[w])
        uh = float(health.health[w])
        margin = float(health.margin_usd[w])
        assert (doc["unified_health"] is None) == math.isinf(uh)
        # 1. the bound from every liquidating scenario
        mine = liq_wallet == w
        for s in np.unique(res.liq_scenario[mine]).tolist():
            weighted = mf * float(weights[s]) * float(loss[w, s])
            assert margin >= weighted - 1e-9 * max(1.0, abs(weighted))
            if equity > 0 and weighted > 1e-9:
                assert uh <= equity / weighted * (1 + 1e-9)
        # 3. a liquidation with a penalty in S: never ∞
        penalties = res.liq_loss_usd[mine]
        if penalties.size and float(penalties.max()) > 1e-6 * max(1.0, abs(equity)):
            event("S liquidates an account with a penalty")
            assert math.isfinite(uh), doc
        # 2. the nearest liquidation within S's single-factor range is liquidated by S
        nearest: dict[str, Any] | None = doc["first_liquidation"]["nearest"]
        if nearest is not None:
            f = model.factors.index(nearest["factor"])
            move = float(nearest["move"])
            assert nearest["direction"] == ("falls" if move < 0 or (move == 0 and nearest["direction"] == "falls")
                                            else "rises")
            reach = down[f] if nearest["direction"] == "falls" else up[f]
            if abs(move) < reach * (1 - 1e-9):
                event(f"nearest within S: {model.kinds[f].value}")
                col = uni.factor_set.underlyings.index(nearest["factor"])
                m = uni.factor_set.price_multipliers
                others = np.delete(np.abs(m - 1.0) > 1e-12, col, axis=1).any(axis=1)
                target = 1.0 - reach if nearest["direction"] == "falls" else 1.0 + reach
                at_end = np.flatnonzero(~others & np.isclose(m[:, col], target, rtol=0, atol=1e-12))
                assert at_end.size, nearest
                venues = {book.venues[int(book.acc_venue[a])]
                          for a, s in zip(res.liq_account.tolist(), res.liq_scenario.tolist(), strict=True)
                          if book.acc_wallet[a] == w and s in set(at_end.tolist())}
                assert nearest["venue"] in venues, (nearest, venues)
                assert math.isfinite(uh), doc
                s_end = int(at_end[0])
                weighted = mf * float(weights[s_end]) * float(loss[w, s_end])
                if equity > 0 and weighted > 1e-9:
                    assert uh <= equity / weighted * (1 + 1e-9)
            else:
                event("nearest beyond S")
        # 4. one risky factor: the uniform moves and the nearest agree
        held_risky = {k for k in doc["net_exposure_usd"] if k in model.risky}
        fl = doc["first_liquidation"]
        if len(held_risky) == 1 and nearest is not None:
            (risky,) = held_risky
            for side in ("down", "up"):
                if fl[side]["move"] is not None:
                    assert abs(float(nearest["move"])) <= float(fl[side]["move"]) * (1 + 1e-9) + 1e-12
            if nearest["factor"] == risky:
                event("nearest on the one risky factor")
                side = "down" if nearest["direction"] == "falls" else "up"
                if fl[side]["move"] is not None:
                    assert abs(float(nearest["move"])) == pytest.approx(float(fl[side]["move"]), rel=1e-9, abs=1e-12)


@PROPS
@given(books())
def test_the_headline_is_never_safer_than_the_first_venue_liquidation(inputs: RiskInputs) -> None:
    _check(inputs)


def test_every_peg_and_basis_is_moved_alone_both_ways_and_against_each_other() -> None:
    """The set used for unified health moves each peg and basis alone down and up and every pair against each
    other, sized from the data (USDC by its own low; DAI like the worst stablecoin; bases by the asset map)."""
    wallets = [WalletSpec("emode", (aave_account({"USDC": (10_000.0, 0.985)}, {"DAI": 9_000.0}, bonus=0.01),)),
               WalletSpec("loop", (aave_account({"wstETH": (10.0, 0.95)}, {"ETH": 10.0}),))]
    prices = {a: PRICES[a] for a in ("USDC", "DAI", "wstETH", "ETH")}
    model = factor_model(tuple(prices))
    book = Book.from_wallets(wallets, prices, stable=("USDC", "DAI"))
    inputs = RiskInputs(book.wallets, book, book.underlyings, frozenset({"USDC", "DAI"}), None, model)
    uni = unified_scenarios(inputs)
    down, up = model.single_factor_moves(uni.factor_set)
    for f in (*model.pegs, *model.bases):
        i = model.factors.index(f)
        assert down[i] == pytest.approx(uni.sizes.down[f]), f
        assert up[i] == pytest.approx(uni.sizes.up[f]), f
    assert uni.sizes.down["DAI/USD"] == uni.sizes.down["USDC/USD"] > 0.12  # USDC's 0.877 is the worst low
    assert uni.sizes.down["stETH/ETH"] == 0.05
    names = set(uni.factor_set.names)
    spreads = (*model.pegs, *model.bases)
    for a in spreads:
        for b in spreads:
            if a != b:
                assert f"SPREAD {a} down {b} up" in names
    assert {"SPREAD pegs down", "BREAK crash + USDC/USD premium", "BREAK crash + DAI/USD depeg"} <= names
    crash = uni.book_set.names.index("BREAK crash")
    row = dict(zip(uni.book_set.underlyings, uni.book_set.price_multipliers[crash], strict=True))
    assert row["wstETH"] == pytest.approx(0.7 * 0.95)  # ETH crashes and the basis widens
    assert row["ETH"] == pytest.approx(0.7)
    assert row["USDC"] == 1.0
