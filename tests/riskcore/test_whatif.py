"""What-if replays (riskcore/venues/<venue>/whatif.py): each action's integer arithmetic as the contracts do it,
the pools' refusals at their boundaries, and properties over random states (rounding always against the wallet, never
lost)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcore.fixedpoint import ray_div, ray_mul
from riskcore.units import RAY, UINT256_MAX, WAD
from riskcore.venues.aave_v3.health import AaveEMode, AaveReserveParams, AaveUserBalance
from riskcore.venues.aave_v3.whatif import (
    AaveReserveFlags,
    AaveWallet,
    aave_borrow,
    aave_repay,
    aave_supply,
    aave_withdraw,
    percent_div,
)
from riskcore.venues.morpho_blue.health import MorphoMarketState, borrowed_assets, to_shares_down, to_shares_up
from riskcore.venues.morpho_blue.whatif import (
    MorphoPosition,
    morpho_borrow,
    morpho_oracle_price,
    morpho_repay,
    morpho_supply,
    morpho_supply_collateral,
    morpho_withdraw,
    morpho_withdraw_collateral,
)

INCOME = 1_050_000_000_123_456_789_000_000_000  # 1.05… ray: scaled ≠ balance
DEBT_INDEX = 1_100_000_000_987_654_321_000_000_000
WETH = AaveReserveParams(0, 18, 8_000, 8_250, 1, 4_000 * 10**8, INCOME, DEBT_INDEX)
USDC = AaveReserveParams(1, 6, 8_000, 8_500, 2, 10**8, INCOME, DEBT_INDEX)
DAI = AaveReserveParams(2, 18, 7_500, 8_000, 2, 10**8, INCOME, DEBT_INDEX)
ZERO_LTV = AaveReserveParams(3, 18, 0, 7_000, 0, 10 * 10**8, RAY, RAY)
ISOLATED = AaveReserveParams(4, 18, 5_000, 6_000, 0, 20 * 10**8, RAY, RAY)
RESERVES = {r.reserve_id: r for r in (WETH, USDC, DAI, ZERO_LTV, ISOLATED)}
FLAGS = {4: AaveReserveFlags(debt_ceiling=1_000_000)}


def wallet(*balances: AaveUserBalance, emode: int = 0) -> AaveWallet:
    return AaveWallet(RESERVES, {b.reserve_id: b for b in balances}, emode, {2: AaveEMode(9_300, 9_500, 0)}, FLAGS)


def hedged() -> AaveWallet:
    """20 WETH against 40,000 USDC (scaled at the indexes above)."""
    return wallet(AaveUserBalance(0, ray_div(20 * WAD, INCOME), 0, 0, True, False),
                  AaveUserBalance(1, 0, ray_div(40_000 * 10**6, DEBT_INDEX), 0, False, True))


# --- Aave -------------------------------------------------------------------------------------------------------
def test_supply_mints_ray_div_of_the_amount_at_the_liquidity_index() -> None:
    w = hedged()
    step = aave_supply(w, 0, 3 * WAD + 7)
    assert step.refused is None
    minted = step.wallet.balance(0).scaled_a_token_balance_raw - w.balance(0).scaled_a_token_balance_raw
    assert minted == (3 * WAD + 7) * RAY // INCOME + (1 if ((3 * WAD + 7) * RAY % INCOME) * 2 >= INCOME else 0)
    assert step.wallet.supplied_raw(0) == ray_mul(w.balance(0).scaled_a_token_balance_raw + minted, INCOME)
    assert step.wallet.account_data().health_factor_wad > w.account_data().health_factor_wad


def test_repay_burns_at_the_debt_index_and_the_whole_debt_clears_the_bit() -> None:
    w = hedged()
    owed = w.variable_debt_raw(1)
    part = aave_repay(w, 1, 5_000 * 10**6).wallet
    assert part.balance(1).scaled_variable_debt_raw == (w.balance(1).scaled_variable_debt_raw
                                                       - ray_div(5_000 * 10**6, DEBT_INDEX))
    assert part.balance(1).borrowing
    full = aave_repay(w, 1, owed).wallet
    assert full.balance(1).scaled_variable_debt_raw == 0
    assert not full.balance(1).borrowing
    assert full.account_data().health_factor_wad == UINT256_MAX
    with pytest.raises(ValueError, match="variable debt"):
        aave_repay(w, 1, owed + 1)


def test_stable_debt_is_repaid_when_there_is_no_variable_debt() -> None:
    w = wallet(AaveUserBalance(0, ray_div(10 * WAD, INCOME), 0, 0, True, False),
               AaveUserBalance(1, 0, 0, 8_000 * 10**6, False, True))
    after = aave_repay(w, 1, 3_000 * 10**6).wallet
    assert after.balance(1).stable_debt_raw == 5_000 * 10**6
    assert aave_repay(w, 1, 8_000 * 10**6).wallet.balance(1).borrowing is False


def test_a_withdrawal_to_exactly_health_one_passes_and_one_unit_more_is_refused() -> None:
    # 1 WETH at $4,000 (LT 82.5 %) against 3,300 USDC: HF = 3,300 / 3,300 = 1.0 exactly, with the index at 1.
    reserves = {0: dataclasses.replace(WETH, normalized_income_ray=RAY, normalized_variable_debt_ray=RAY),
                1: dataclasses.replace(USDC, normalized_income_ray=RAY, normalized_variable_debt_ray=RAY)}
    w = AaveWallet(reserves, {0: AaveUserBalance(0, 2 * WAD, 0, 0, True, False),
                              1: AaveUserBalance(1, 0, 3_300 * 10**6, 0, False, True)})
    ok = aave_withdraw(w, 0, WAD)
    assert ok.wallet.account_data().health_factor_wad == WAD
    assert ok.refused is None
    refused = aave_withdraw(w, 0, WAD + 10**10)  # 1e-8 WETH more: one base unit of collateral less
    assert refused.wallet.account_data().health_factor_wad < WAD
    assert refused.refused is not None
    assert refused.refused.startswith("HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD")


def test_withdrawing_everything_clears_the_collateral_bit_and_too_much_is_an_error() -> None:
    w = wallet(AaveUserBalance(0, ray_div(5 * WAD, INCOME), 0, 0, True, False))
    everything = aave_withdraw(w, 0, w.supplied_raw(0)).wallet.balance(0)
    assert (everything.scaled_a_token_balance_raw, everything.usage_as_collateral) == (0, False)
    with pytest.raises(ValueError, match="balance"):
        aave_withdraw(w, 0, w.supplied_raw(0) + 1)


def test_borrow_is_refused_beyond_the_loan_to_value_exactly_where_the_pool_refuses() -> None:
    # 10 WETH at $4,000, LTV 80 %: collateral needed = debt.percentDiv(8000) must stay ≤ 40,000 USD.
    w = wallet(AaveUserBalance(0, ray_div(10 * WAD, INCOME), 0, 0, True, False))
    collateral = w.account_data().total_collateral_base_raw
    limit = max(a for a in range(31_999 * 10**6, 32_001 * 10**6, 10**4)
                if percent_div(a * 10**8 // 10**6, 8_000) <= collateral)
    assert aave_borrow(w, 1, limit).refused is None
    over = aave_borrow(w, 1, limit + 10**4).refused
    assert over is not None
    assert over.startswith("COLLATERAL_CANNOT_COVER_NEW_BORROW")


def test_borrow_checks_the_emode_category_the_reserve_flags_and_the_health_before() -> None:
    in_emode = wallet(AaveUserBalance(1, ray_div(10_000 * 10**6, INCOME), 0, 0, True, False), emode=2)
    assert aave_borrow(in_emode, 2, 1_000 * WAD).refused is None  # DAI is in category 2
    refused = aave_borrow(in_emode, 0, WAD).refused  # WETH is not
    assert refused is not None
    assert refused.startswith("INCONSISTENT_EMODE_CATEGORY")
    frozen = dataclasses.replace(hedged(), flags={1: AaveReserveFlags(frozen=True)})
    assert (aave_borrow(frozen, 1, 10**6).refused or "").startswith("RESERVE_FROZEN")
    disabled = dataclasses.replace(hedged(), flags={1: AaveReserveFlags(borrowing_enabled=False)})
    assert (aave_borrow(disabled, 1, 10**6).refused or "").startswith("BORROWING_NOT_ENABLED")
    crashed = hedged().with_prices({0: 2_000 * 10**8})  # HF 0.83: no new borrow at all
    assert (aave_borrow(crashed, 1, 10**6).refused or "").startswith("HEALTH_FACTOR_LOWER_THAN")


def test_a_first_supply_becomes_collateral_unless_ltv_zero_isolated_or_in_isolation() -> None:
    empty = wallet()
    assert aave_supply(empty, 0, WAD).wallet.balance(0).usage_as_collateral is True
    assert aave_supply(empty, 3, WAD).wallet.balance(3).usage_as_collateral is False  # LTV 0
    assert aave_supply(empty, 4, WAD).wallet.balance(4).usage_as_collateral is False  # a debt ceiling
    isolated = wallet(AaveUserBalance(4, WAD, 0, 0, True, False))  # its only collateral is isolated
    assert aave_supply(isolated, 0, WAD).wallet.balance(0).usage_as_collateral is False
    not_first = wallet(AaveUserBalance(0, WAD, 0, 0, False, False))  # supplied, collateral turned off
    assert aave_supply(not_first, 0, WAD).wallet.balance(0).usage_as_collateral is False


def test_prices_replace_the_oracle_and_must_be_positive() -> None:
    w = hedged().with_prices({0: 3_000 * 10**8})
    assert w.reserves[0].price_raw == 3_000 * 10**8
    assert w.account_data().health_factor_wad < hedged().account_data().health_factor_wad
    with pytest.raises(ValueError, match="positive"):
        hedged().with_prices({0: 0})
    with pytest.raises(ValueError, match="positive"):
        aave_supply(hedged(), 0, 0)


amounts = st.integers(min_value=1, max_value=10**30)


@given(amounts, amounts, st.integers(min_value=RAY, max_value=3 * RAY))
@settings(max_examples=200, deadline=None)
def test_supply_then_withdraw_of_the_same_amount_restores_the_scaled_balance_exactly(
    held: int, amount: int, index: int
) -> None:
    reserves = {0: dataclasses.replace(WETH, normalized_income_ray=index)}
    w = AaveWallet(reserves, {0: AaveUserBalance(0, held, 0, 0, True, False)})
    supplied = aave_supply(w, 0, amount)
    if supplied.refused:  # below one scaled unit: the pool reverts
        assert ray_div(amount, index) == 0
        return
    balance = supplied.wallet.supplied_raw(0)
    if amount > balance:  # rounded away by the two half-up roundings: not withdrawable
        with pytest.raises(ValueError, match="balance"):
            aave_withdraw(supplied.wallet, 0, amount)
        return
    back = aave_withdraw(supplied.wallet, 0, amount).wallet
    assert back.balance(0).scaled_a_token_balance_raw == (0 if amount == balance else held)


# --- Morpho -----------------------------------------------------------------------------------------------------
MARKET = MorphoMarketState(total_supply_assets=5_000_000 * 10**6, total_supply_shares=5_000_000 * 10**12,
                           total_borrow_assets=1_234_567_890_123, total_borrow_shares=1_200_000_000_000_000_000,
                           last_update=1_700_000_000)
PRICE = 4_000 * 10**24  # WETH/USDC: 4,000 USDC per WETH, 1e36 × 10**(6 − 18)
LLTV = 86 * 10**16
POSITION = MorphoPosition(0, to_shares_up(20_000 * 10**6, MARKET.total_borrow_assets, MARKET.total_borrow_shares),
                          10 * WAD)


def test_borrow_adds_shares_rounded_up_to_the_position_and_both_totals() -> None:
    step = morpho_borrow(POSITION, MARKET, 1_000 * 10**6, PRICE, LLTV)
    shares = to_shares_up(1_000 * 10**6, MARKET.total_borrow_assets, MARKET.total_borrow_shares)
    assert step.position.borrow_shares == POSITION.borrow_shares + shares
    assert (step.market.total_borrow_assets, step.market.total_borrow_shares) == (
        MARKET.total_borrow_assets + 1_000 * 10**6, MARKET.total_borrow_shares + shares)
    assert step.refused is None
    too_much = morpho_borrow(POSITION, MARKET, 20_000 * 10**6, PRICE, LLTV)  # 40k against 34.4k of borrowing power
    assert too_much.refused == "insufficient collateral (the position would be unhealthy)"
    assert too_much.health(PRICE, LLTV).healthy is False


def test_repay_partial_rounds_shares_down_and_the_whole_debt_repays_every_share() -> None:
    owed = borrowed_assets(POSITION.borrow_shares, MARKET)
    part = morpho_repay(POSITION, MARKET, 5_000 * 10**6)
    burned = to_shares_down(5_000 * 10**6, MARKET.total_borrow_assets, MARKET.total_borrow_shares)
    assert part.position.borrow_shares == POSITION.borrow_shares - burned
    assert part.market.total_borrow_assets == MARKET.total_borrow_assets - 5_000 * 10**6
    full = morpho_repay(POSITION, MARKET, owed)
    assert full.position.borrow_shares == 0
    assert full.health(PRICE, LLTV).health_wad is None
    with pytest.raises(ValueError, match="owed"):
        morpho_repay(POSITION, MARKET, owed + 1)


def test_withdrawing_collateral_is_refused_where_morpho_is_unhealthy_after() -> None:
    def refused(amount: int) -> bool:
        return morpho_withdraw_collateral(POSITION, MARKET, amount, PRICE, LLTV).refused is not None

    lo, hi = 1, POSITION.collateral_raw  # the most that can go: bisect on the exact rule
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if not refused(mid) else (lo, mid - 1)
    assert not refused(lo)
    assert refused(lo + 1)
    left = MorphoPosition(0, POSITION.borrow_shares, POSITION.collateral_raw - lo)
    assert left.collateral_raw * PRICE // 10**36 * LLTV // WAD >= borrowed_assets(POSITION.borrow_shares, MARKET)
    with pytest.raises(ValueError, match="collateral"):
        morpho_withdraw_collateral(POSITION, MARKET, POSITION.collateral_raw + 1, PRICE, LLTV)
    assert morpho_supply_collateral(POSITION, MARKET, WAD).position.collateral_raw == 11 * WAD


def test_lending_supply_and_withdraw_move_shares_with_the_contracts_roundings() -> None:
    lent = morpho_supply(MorphoPosition(), MARKET, 1_000 * 10**6)
    assert lent.position.supply_shares == to_shares_down(1_000 * 10**6, MARKET.total_supply_assets,
                                                         MARKET.total_supply_shares)
    out = morpho_withdraw(lent.position, lent.market, 400 * 10**6)
    assert out.position.supply_shares == lent.position.supply_shares - to_shares_up(
        400 * 10**6, lent.market.total_supply_assets, lent.market.total_supply_shares)
    with pytest.raises(ValueError, match="supplied"):
        morpho_withdraw(lent.position, lent.market, 1_000 * 10**6 + 1)
    # A market lent out to the last unit cannot give any supply back.
    tight = dataclasses.replace(MARKET, total_borrow_assets=MARKET.total_supply_assets)
    lender = MorphoPosition(supply_shares=10**12)
    assert morpho_withdraw(lender, tight, 1).refused == "insufficient liquidity (the market has lent it out)"
    assert morpho_withdraw(lender, MARKET, 1).refused is None


def test_the_oracle_moves_by_the_ratio_of_the_usd_prices() -> None:
    feeds = lambda coll, loan: coll * 10**24 // loan  # noqa: E731 (the devnet's feed-ratio oracle, 8-dec answers)
    start = feeds(4_000 * 10**8, 10**8)
    for coll, loan in ((3_000 * 10**8, 10**8), (3_141_59265358, 99_870_000), (4_000 * 10**8, 97_000_000)):
        assert morpho_oracle_price(start, (4_000 * 10**8, coll), (10**8, loan)) == feeds(coll, loan)
    assert morpho_oracle_price(start, (1, 1), (1, 1)) == start
    with pytest.raises(ValueError, match="positive"):
        morpho_oracle_price(start, (4_000, 0), (1, 1))


@given(st.integers(min_value=1, max_value=10**15))
@settings(max_examples=200, deadline=None)
def test_borrow_then_repay_of_the_same_assets_never_leaves_less_debt(borrow: int) -> None:
    """Both roundings cost the borrower: borrowing A then repaying A leaves at least the debt there was."""
    before = borrowed_assets(POSITION.borrow_shares, MARKET)
    up = morpho_borrow(POSITION, MARKET, borrow, PRICE, LLTV)
    down = morpho_repay(up.position, up.market, min(borrow, borrowed_assets(up.position.borrow_shares, up.market)))
    assert down.position.borrow_shares >= POSITION.borrow_shares
    assert borrowed_assets(down.position.borrow_shares, down.market) >= before
