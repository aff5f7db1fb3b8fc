"""Property tests (hypothesis) of the unit conversions and the venues' health math.

Units (:mod:`riskcore.units`, :mod:`riskcore.fixedpoint`): conversions are correctly rounded, exact on whole
numbers, monotone, round-trip within one unit in the last place; raw amounts are ``int`` and nothing else.

Health (:mod:`riskcore.venues`, :mod:`riskcore.perp`): for Aave, Morpho and perps — more collateral never lowers
health, more debt never
raises it, a higher collateral price never lowers it, scaling every amount leaves it unchanged, and "health < 1"
is exactly the module's own liquidation predicate. Each "within rounding" below is a bound derived from the
integer path's own roundings (written next to it), never a free tolerance. The Aave integer path is compared with
an independent transliteration of ``GenericLogic.calculateUserAccountData`` (v3.0.2) in Solidity's checked
uint256 arithmetic; the float paths agree with the integer paths to 1e-9 relative beyond those roundings.

Every test is derandomized (``derandomize=True``): CI runs the same examples every time.
"""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from riskcore.fixedpoint import mul_div_down, mul_div_up, percent_mul, ray_div, ray_mul, wad_div, wad_mul
from riskcore.margin import isolated_liquidation, lending_liquidation
from riskcore.perp import (
    PerpBook,
    account_equity,
    account_maintenance,
    liquidatable,
    liquidation_price,
    maintenance_margin,
    margin_health,
    tier_deductions,
)
from riskcore.units import (
    BPS,
    E8,
    E30,
    E36,
    RAY,
    UINT256_MAX,
    WAD,
    bps_to_fraction,
    from_raw,
    from_raw_array,
    ray_to_float,
    to_raw,
    wad_to_float,
)
from riskcore.venues.aave_v3.health import AaveAccountData, AaveEMode, AaveReserveParams, AaveUserBalance, account_data
from riskcore.venues.aave_v3.health import health_factor as aave_health_factor
from riskcore.venues.aave_v3.liquidation import CLOSE_FACTOR, FULL_CLOSE_HF
from riskcore.venues.dydx_v4.health import DydxFigures, dydx_health
from riskcore.venues.morpho_blue.health import (
    MorphoMarketState,
    is_healthy,
    position_health,
)
from riskcore.venues.morpho_blue.health import health_factor as morpho_health_factor
from riskcore.venues.morpho_blue.health import health_factor_raw as morpho_health_factor_raw
from riskcore.venues.morpho_blue.health import liquidation_price as morpho_liquidation_price

PROPS = settings(max_examples=200, deadline=None, derandomize=True)
FEW = settings(max_examples=200, deadline=None, derandomize=True)  # the costlier strategies (books of accounts)

uint256 = st.integers(0, UINT256_MAX)
int256 = st.integers(-(2**255), 2**255 - 1)
decimals_ = st.integers(0, 40)
SCALES = [(18, wad_to_float), (27, ray_to_float), (4, bps_to_fraction)]


def _ulp_fraction(x: float) -> Fraction:
    return Fraction(math.ulp(x))


# ======================================================================================================
# units
# ======================================================================================================
@PROPS
@given(a=int256, b=int256, d=decimals_)
@example(a=2**256 - 1, b=2**256 - 2, d=0).via("uint256 max against its neighbour, no scale")
@example(a=-1, b=1, d=36)
def test_from_raw_is_correctly_rounded_and_monotone(a: int, b: int, d: int) -> None:
    x, y = from_raw(a, d), from_raw(b, d)
    assert type(x) is float
    assert x == float(Fraction(a, 10**d))  # the nearest binary64 to the exact quotient
    if a <= b:
        assert x <= y
    else:
        assert x >= y
    for scale, fn in SCALES:
        assert fn(a) == from_raw(a, scale)


@PROPS
@given(raw=int256, d=decimals_)
@example(raw=2**53 + 1, d=0).via("the first integer binary64 cannot hold")
@example(raw=123_456_789_012_345_678_901, d=18)
def test_from_raw_round_trips_within_one_unit_in_the_last_place(raw: int, d: int) -> None:
    x = from_raw(raw, d)
    scale = 10**d
    back = round(Fraction(x) * scale)  # the raw amount the float stands for, rounded to a whole unit
    # |x - raw / 10^d| <= ulp(x) / 2, so the recovered integer is off by at most half an ulp (in raw units) + 1/2
    assert abs(back - raw) <= _ulp_fraction(x) * scale / 2 + Fraction(1, 2)
    if _ulp_fraction(x) * scale < 1:  # the float pins the integer: the round trip is exact
        assert back == raw
    assert abs(Fraction(from_raw(back, d)) - Fraction(x)) <= _ulp_fraction(x)


@PROPS
@given(k=st.integers(-(2**53), 2**53), d=decimals_)
def test_whole_numbers_convert_exactly(k: int, d: int) -> None:
    raw = k * 10**d
    assert from_raw(raw, d) == float(k)
    assert to_raw(k, d) == raw
    assert to_raw(str(k), d) == raw
    assert to_raw(Decimal(k), d) == raw
    assert to_raw(Fraction(k), d) == raw
    np.testing.assert_array_equal(from_raw_array([raw, raw], d), [float(k), float(k)])


@PROPS
@given(raw=int256, d=decimals_)
@example(raw=-1, d=40)
@example(raw=10**40 + 1, d=40)
def test_to_raw_is_exact_on_every_decimal_spelling(raw: int, d: int) -> None:
    text = f"{raw}e-{d}"
    sign, digits = ("-", str(-raw)) if raw < 0 else ("", str(raw))
    digits = digits.rjust(d + 1, "0")
    plain = f"{sign}{digits[: len(digits) - d]}.{digits[len(digits) - d:]}" if d else f"{sign}{digits}"
    for spelling in (text, plain, Decimal(text), Decimal(plain), Fraction(raw, 10**d)):
        out = to_raw(spelling, d)
        assert type(out) is int
        assert out == raw


@PROPS
@given(raw=int256, d=st.integers(0, 30), extra=st.integers(1, 9))
def test_to_raw_refuses_sub_unit_remainders(raw: int, d: int, extra: int) -> None:
    # one more (non-zero) digit than the scale holds: there is no exact raw amount
    amount = Decimal(f"{raw}{extra}e-{d + 1}")
    with pytest.raises(ValueError, match=f"more than {d} decimals"):
        to_raw(amount, d)


_not_int = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.fractions(),
    st.text(max_size=10),
    st.none(),
    st.builds(np.float64, st.floats(allow_nan=False)),
    st.builds(np.int64, st.integers(-(2**63), 2**63 - 1)),
)


@PROPS
@given(value=_not_int, d=st.integers(0, 36))
def test_raw_amounts_are_ints_and_nothing_else(value: Any, d: int) -> None:
    """``from_raw`` and its scale shorthands refuse every non-``int`` (bools and numpy scalars too)."""
    with pytest.raises(TypeError, match="raw amounts are integers"):
        from_raw(value, d)
    for _, fn in SCALES:
        with pytest.raises(TypeError, match="raw amounts are integers"):
            fn(value)
    with pytest.raises(TypeError, match="raw amounts are integers"):
        from_raw_array([1, value], d)


@PROPS
@given(value=st.floats(allow_nan=True, allow_infinity=True) | st.builds(np.float64, st.floats()), d=decimals_)
def test_to_raw_refuses_floats(value: float, d: int) -> None:
    with pytest.raises(TypeError, match="not float"):
        to_raw(value, d)  # type: ignore[arg-type]


@PROPS
@given(
    text=st.sampled_from(["abc", "", " ", "1.2.3", "0x10", "NaN", "-nan", "sNaN", "Infinity", "-inf", "1e", "--1"])
    | st.text(max_size=12),
    d=st.integers(0, 30),
)
@example(text="abc", d=6).via("decimal.InvalidOperation escaped to_raw before the fix")
@example(text="Infinity", d=6).via("OverflowError escaped to_raw before the fix")
@example(text="NaN", d=6)
def test_to_raw_of_any_text_is_an_exact_int_or_a_value_error(text: str, d: int) -> None:
    try:
        out = to_raw(text, d)
    except ValueError:
        return
    assert type(out) is int
    assert Fraction(out, 10**d) == Fraction(Decimal(text.strip()))


@PROPS
@given(a=uint256, b=uint256, c=st.integers(1, UINT256_MAX))
@example(a=1, b=5 * 10**26, c=1).via("exactly half a ray rounds up")
def test_fixed_point_primitives_round_as_the_protocols_do(a: int, b: int, c: int) -> None:
    def half_up(x: Fraction) -> int:
        return math.floor(x + Fraction(1, 2))

    assert wad_mul(a, b) == half_up(Fraction(a * b, WAD))
    assert ray_mul(a, b) == half_up(Fraction(a * b, RAY))
    assert percent_mul(a, b % (BPS + 1)) == half_up(Fraction(a * (b % (BPS + 1)), BPS))
    # wadDiv / rayDiv add half the divisor (rounded down) before dividing: ties of odd divisors round down
    assert wad_div(a, c) == (a * WAD + c // 2) // c
    assert abs(Fraction(wad_div(a, c)) - Fraction(a * WAD, c)) <= Fraction(1, 2)
    assert abs(Fraction(ray_div(a, c)) - Fraction(a * RAY, c)) <= Fraction(1, 2)
    assert mul_div_down(a, b, c) == math.floor(Fraction(a * b, c))
    assert mul_div_up(a, b, c) == math.ceil(Fraction(a * b, c))
    for v in (wad_mul(a, b), ray_mul(a, b), wad_div(a, c), mul_div_down(a, b, c), mul_div_up(a, b, c)):
        assert type(v) is int


def test_scale_constants() -> None:
    assert (WAD, RAY, BPS, E8, E30, E36) == (10**18, 10**27, 10**4, 10**8, 10**30, 10**36)


# ======================================================================================================
# Aave v3: the integer path, an independent Solidity transliteration, and the float path
# ======================================================================================================
_S_HALF_RAY = 5 * 10**26
_S_HALF_PCT = 5_000


def _u256(x: int) -> int:
    assert 0 <= x <= UINT256_MAX, "checked uint256 arithmetic: the protocol would revert"
    return x


def _sol_ray_mul(a: int, b: int) -> int:
    """``WadRayMath.rayMul`` (assembly): revert if ``b != 0 && a > (max - HALF_RAY) / b``."""
    assert not (b != 0 and a > (UINT256_MAX - _S_HALF_RAY) // b)
    return (a * b + _S_HALF_RAY) // 10**27


def _sol_wad_div(a: int, b: int) -> int:
    """``WadRayMath.wadDiv``: revert if ``b == 0 || a > (max - b / 2) / WAD``."""
    assert b != 0
    assert a <= (UINT256_MAX - b // 2) // 10**18
    return (a * 10**18 + b // 2) // b


def _sol_percent_mul(value: int, percentage: int) -> int:
    """``PercentageMath.percentMul``: revert if ``percentage != 0 && value > (max - HALF) / percentage``."""
    assert not (percentage != 0 and value > (UINT256_MAX - _S_HALF_PCT) // percentage)
    return (value * percentage + _S_HALF_PCT) // 10**4


def _sol_account_data(
    reserves: dict[int, AaveReserveParams], balances: list[AaveUserBalance], user_emode: int,
    cats: dict[int, AaveEMode],
) -> tuple[int, int, int, int, int, bool]:
    """``GenericLogic.calculateUserAccountData`` of aave-v3-core v3.0.2, line by line.

    Returns (totalCollateralInBaseCurrency, totalDebtInBaseCurrency, avgLtv, avgLiquidationThreshold,
    healthFactor, hasZeroLtvCollateral).
    """
    e_ltv = e_lt = e_price = 0
    if user_emode != 0:
        e_ltv, e_lt, e_price = cats[user_emode].ltv_bps, cats[user_emode].liquidation_threshold_bps, \
            cats[user_emode].price_raw
    by_id = {b.reserve_id: b for b in balances}
    total_coll = total_debt = avg_ltv = avg_lt = 0
    has_zero_ltv = False
    for i in range(max(by_id, default=-1) + 1):  # `while (vars.i < params.reservesCount)`
        bal = by_id.get(i)
        if bal is None or not (bal.usage_as_collateral or bal.borrowing):  # isUsingAsCollateralOrBorrowing
            continue
        r = reserves[i]
        ltv, lt, dec, cat = r.ltv_bps, r.liquidation_threshold_bps, r.decimals, r.emode_category
        asset_unit = 10**dec
        price = e_price if (e_price != 0 and user_emode == cat) else r.price_raw
        in_emode = user_emode != 0 and cat == user_emode  # EModeLogic.isInEModeCategory
        if lt != 0 and bal.usage_as_collateral:
            # _getUserBalanceInBaseCurrency: scaledBalanceOf.rayMul(normalizedIncome) * price / assetUnit
            balance = _u256(_sol_ray_mul(bal.scaled_a_token_balance_raw, r.normalized_income_ray) * price)
            value = balance // asset_unit
            total_coll = _u256(total_coll + value)
            if ltv != 0:
                avg_ltv = _u256(avg_ltv + value * (e_ltv if in_emode else ltv))
            else:
                has_zero_ltv = True
            avg_lt = _u256(avg_lt + value * (e_lt if in_emode else lt))
        if bal.borrowing:
            # _getUserDebtInBaseCurrency
            debt = bal.scaled_variable_debt_raw
            if debt != 0:
                debt = _sol_ray_mul(debt, r.normalized_variable_debt_ray)
            debt = _u256(debt + bal.stable_debt_raw)
            debt = _u256(price * debt)
            total_debt = _u256(total_debt + debt // asset_unit)
    avg_ltv = avg_ltv // total_coll if total_coll != 0 else 0
    avg_lt = avg_lt // total_coll if total_coll != 0 else 0
    hf = UINT256_MAX if total_debt == 0 else _sol_wad_div(_sol_percent_mul(total_coll, avg_lt), total_debt)
    return total_coll, total_debt, avg_ltv, avg_lt, hf, has_zero_ltv


AaveBook = tuple[dict[int, AaveReserveParams], list[AaveUserBalance], int, dict[int, AaveEMode]]


@st.composite
def aave_books(
    draw: st.DrawFn, *, whole_tokens: bool = False, lt: int | None = None, emode: bool = True, max_reserves: int = 4
) -> AaveBook:
    """A wallet on a random market. ``whole_tokens``: indexes are 1 ray and balances whole tokens, so every value
    is exact (``tokens × price``); ``lt``: every reserve has this liquidation threshold (and e-mode is off)."""
    n = draw(st.integers(1, max_reserves))
    reserves: dict[int, AaveReserveParams] = {}
    balances: list[AaveUserBalance] = []
    for rid in range(n):
        dec = draw(st.sampled_from([0, 2, 6, 8, 18, 24]))
        r_lt = lt if lt is not None else draw(st.integers(0, BPS))
        ltv = draw(st.integers(0, r_lt))
        cat = draw(st.sampled_from([0, 1, 2])) if emode and lt is None else 0
        price = draw(st.integers(1, 10**14))  # 1e-8 .. 1e6 USD at 1e8 = $1
        income = RAY if whole_tokens else draw(st.integers(RAY, 3 * RAY))
        debt_index = RAY if whole_tokens else draw(st.integers(RAY, 3 * RAY))
        reserves[rid] = AaveReserveParams(rid, dec, ltv, r_lt, cat, price, income, debt_index)

        def amount(dec: int = dec) -> int:
            if whole_tokens:
                return int(draw(st.integers(0, 10**9)) * 10**dec)
            return int(draw(st.integers(0, 10 ** (dec + 9))))

        coll, vdebt = amount(), amount()
        sdebt = amount() if draw(st.integers(0, 3)) == 0 else 0
        balances.append(AaveUserBalance(rid, coll, vdebt, sdebt, draw(st.booleans()), draw(st.booleans())))
    user_emode = draw(st.sampled_from([0, 0, 1, 2])) if emode and lt is None else 0
    cats: dict[int, AaveEMode] = {}
    if user_emode:
        e_lt = draw(st.integers(1, BPS))
        cats[user_emode] = AaveEMode(draw(st.integers(0, e_lt)), e_lt, draw(st.sampled_from([0, 10**8, 4 * 10**11])))
    return reserves, balances, user_emode, cats


def _data(book: AaveBook) -> AaveAccountData:
    reserves, balances, user_emode, cats = book
    return account_data(reserves, balances, user_emode, cats)


def _hf(book: AaveBook) -> int:
    return _data(book).health_factor_wad


def _with_balance(book: AaveBook, rid: int, **changes: Any) -> AaveBook:
    reserves, balances, user_emode, cats = book
    return reserves, [replace(b, **changes) if b.reserve_id == rid else b for b in balances], user_emode, cats


def _with_price(book: AaveBook, rid: int, price: int) -> AaveBook:
    reserves, balances, user_emode, cats = book
    return {**reserves, rid: replace(reserves[rid], price_raw=price)}, balances, user_emode, cats


def _truncation_slack_ok(hf_before: int, hf_after: int, after: AaveAccountData) -> bool:
    """``hf_after >= hf_before - slack``: the average threshold is truncated to whole bps, so a larger weighted sum
    W' >= W can still lose up to (C' - 1) / 1e4 of ``percentMul``'s result, plus one unit for its half-up rounding
    on each side and one wei for ``wadDiv``: HF - HF' <= (C' + 9998) / 1e4 × WAD / D + 1 (integers, exactly)."""
    d = after.total_debt_base_raw
    return (hf_before - hf_after - 1) * BPS * d <= (after.total_collateral_base_raw + 9_998) * WAD


@FEW
@given(book=aave_books())
def test_aave_integer_path_equals_the_protocols_arithmetic(book: AaveBook) -> None:
    ours = _data(book)
    theirs = _sol_account_data(*book)
    assert (
        ours.total_collateral_base_raw,
        ours.total_debt_base_raw,
        ours.ltv_bps,
        ours.current_liquidation_threshold_bps,
        ours.health_factor_wad,
        ours.has_zero_ltv_collateral,
    ) == theirs
    # raw amounts stay ints all the way through
    for v in (ours.total_collateral_base_raw, ours.total_debt_base_raw, ours.available_borrows_base_raw,
              ours.current_liquidation_threshold_bps, ours.ltv_bps, ours.health_factor_wad,
              *ours.collateral_base_raw.values(), *ours.debt_base_raw.values()):
        assert type(v) is int
    assert sum(ours.collateral_base_raw.values()) == ours.total_collateral_base_raw
    assert sum(ours.debt_base_raw.values()) == ours.total_debt_base_raw


@FEW
@given(book=aave_books(), data=st.data())
def test_aave_more_collateral_never_lowers_health_beyond_the_threshold_truncation(
    book: AaveBook, data: st.DataObject
) -> None:
    reserves, balances, _, _ = book
    rid = data.draw(st.sampled_from(sorted(reserves)))
    bal = next(b for b in balances if b.reserve_id == rid)
    more = bal.scaled_a_token_balance_raw + data.draw(st.integers(1, 10**30))
    after_book = _with_balance(book, rid, scaled_a_token_balance_raw=more, usage_as_collateral=True)
    before, after = _data(book), _data(after_book)
    assert after.total_collateral_base_raw >= before.total_collateral_base_raw
    assert after.total_debt_base_raw == before.total_debt_base_raw
    assert _truncation_slack_ok(before.health_factor_wad, after.health_factor_wad, after)


@FEW
@given(lt=st.integers(1, BPS), data=st.data())
def test_aave_more_collateral_never_lowers_health_when_thresholds_agree(lt: int, data: st.DataObject) -> None:
    """With one liquidation threshold the average is exact and monotonicity holds to the wei."""
    book = data.draw(aave_books(lt=lt))
    rid = data.draw(st.sampled_from(sorted(book[0])))
    bal = next(b for b in book[1] if b.reserve_id == rid)
    more = bal.scaled_a_token_balance_raw + data.draw(st.integers(1, 10**30))
    assert _hf(_with_balance(book, rid, scaled_a_token_balance_raw=more, usage_as_collateral=True)) >= _hf(book)


def test_aave_threshold_truncation_can_lower_health_when_dust_collateral_is_added() -> None:
    """Why the general bound above is needed, not a defect: Aave truncates the value-weighted threshold to whole
    bps, so $100 of collateral at 80% plus 1e-8 USD at 50% averages to 7,999 bps, and HF drops by 1/8000 — exactly
    what ``getUserAccountData`` does on-chain (the transliteration agrees)."""
    reserves = {0: AaveReserveParams(0, 8, 8_000, 8_000, 0, 10**8, RAY, RAY),
                1: AaveReserveParams(1, 8, 5_000, 5_000, 0, 10**8, RAY, RAY)}
    base = [AaveUserBalance(0, 100 * 10**8, 50 * 10**8, 0, True, True)]
    book: AaveBook = (reserves, base, 0, {})
    dusted: AaveBook = (reserves, [*base, AaveUserBalance(1, 1, 0, 0, True, False)], 0, {})
    before, after = _data(book), _data(dusted)
    assert (before.current_liquidation_threshold_bps, after.current_liquidation_threshold_bps) == (8_000, 7_999)
    assert before.health_factor_wad == 1_600_000_000_000_000_000
    assert after.health_factor_wad == 1_599_800_000_200_000_000
    assert _sol_account_data(*dusted)[4] == after.health_factor_wad
    assert _truncation_slack_ok(before.health_factor_wad, after.health_factor_wad, after)


@FEW
@given(book=aave_books(), data=st.data())
def test_aave_more_debt_never_raises_health(book: AaveBook, data: st.DataObject) -> None:
    rid = data.draw(st.sampled_from(sorted(book[0])))
    bal = next(b for b in book[1] if b.reserve_id == rid)
    field = data.draw(st.sampled_from(["scaled_variable_debt_raw", "stable_debt_raw"]))
    more = getattr(bal, field) + data.draw(st.integers(1, 10**30))
    after = _with_balance(book, rid, **{field: more, "borrowing": True})
    assert _hf(after) <= _hf(book)


@FEW
@given(book=aave_books(), data=st.data())
def test_aave_a_higher_collateral_price_never_lowers_health_beyond_the_threshold_truncation(
    book: AaveBook, data: st.DataObject
) -> None:
    rid = data.draw(st.sampled_from(sorted(book[0])))
    book = _with_balance(book, rid, borrowing=False)  # a price rise of a borrowed asset raises the debt too
    higher = book[0][rid].price_raw + data.draw(st.integers(1, 10**14))
    before, after = _data(book), _data(_with_price(book, rid, higher))
    assert after.total_debt_base_raw == before.total_debt_base_raw
    assert _truncation_slack_ok(before.health_factor_wad, after.health_factor_wad, after)


@FEW
@given(lt=st.integers(1, BPS), data=st.data())
def test_aave_a_higher_collateral_price_never_lowers_health_when_thresholds_agree(lt: int, data: st.DataObject) -> None:
    book = data.draw(aave_books(lt=lt))
    rid = data.draw(st.sampled_from(sorted(book[0])))
    book = _with_balance(book, rid, borrowing=False)
    higher = book[0][rid].price_raw + data.draw(st.integers(1, 10**14))
    assert _hf(_with_price(book, rid, higher)) >= _hf(book)


@FEW
@given(book=aave_books(whole_tokens=True), k=st.integers(2, 10**12), f=st.floats(1e-6, 1e6))
def test_aave_health_is_scale_invariant(book: AaveBook, k: int, f: float) -> None:
    reserves, balances, user_emode, cats = book
    scaled = [replace(b, scaled_a_token_balance_raw=k * b.scaled_a_token_balance_raw,
                      scaled_variable_debt_raw=k * b.scaled_variable_debt_raw, stable_debt_raw=k * b.stable_debt_raw)
              for b in balances]
    one, many = _data(book), account_data(reserves, scaled, user_emode, cats)
    assert many.total_collateral_base_raw == k * one.total_collateral_base_raw  # whole tokens: values are exact
    assert many.total_debt_base_raw == k * one.total_debt_base_raw
    assert many.current_liquidation_threshold_bps == one.current_liquidation_threshold_bps
    d = one.total_debt_base_raw
    if d == 0:
        assert one.health_factor_wad == many.health_factor_wad == UINT256_MAX
        return
    # percentMul rounds X and kX to within 1/2 each (so N_k / k is within 1 of N_1), wadDiv adds a wei each side:
    # |HF_k - HF_1| <= WAD / D + 2
    assert abs(many.health_factor_wad - one.health_factor_wad) * d <= WAD + 2 * d
    # the float path: scaling every USD amount by f
    coll, lts, debt = _float_inputs(one, reserves, per_reserve_lt=True, book=book)
    h1 = float(aave_health_factor(coll, lts, debt))
    hf_ = float(aave_health_factor(coll * f, lts, debt * f))
    assert hf_ == pytest.approx(h1, rel=1e-12)


def _effective_lt(book: AaveBook, rid: int) -> int:
    reserves, _, user_emode, cats = book
    r = reserves[rid]
    if user_emode and r.emode_category == user_emode:
        return cats[user_emode].liquidation_threshold_bps
    return r.liquidation_threshold_bps


def _float_inputs(
    data: AaveAccountData, reserves: dict[int, AaveReserveParams], *, per_reserve_lt: bool, book: AaveBook
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]],
           np.ndarray[Any, np.dtype[np.float64]]]:
    """The integer path's per-reserve values as USD floats, with each reserve's threshold or the averaged one."""
    ids = sorted(reserves)
    coll = np.array([data.collateral_base_raw.get(i, 0) / E8 for i in ids])
    debt = np.array([data.debt_base_raw.get(i, 0) / E8 for i in ids])
    if per_reserve_lt:
        lts = np.array([_effective_lt(book, i) / BPS for i in ids])
    else:
        lts = np.full(len(ids), data.current_liquidation_threshold_bps / BPS)
    return coll, lts, debt


@FEW
@given(book=aave_books())
def test_aave_float_path_agrees_with_the_integer_path(book: AaveBook) -> None:
    data = _data(book)
    reserves = book[0]
    c, d = data.total_collateral_base_raw, data.total_debt_base_raw
    coll, avg_lts, debt = _float_inputs(data, reserves, per_reserve_lt=False, book=book)
    fast = float(aave_health_factor(coll, avg_lts, debt))
    if d == 0:
        assert fast == math.inf
        assert data.health_factor_wad == UINT256_MAX
        return
    exact = data.health_factor_wad / WAD
    # With the integer path's own averaged threshold the two differ only by its roundings: percentMul (half a base
    # unit: 0.5 / D in HF) and wadDiv (a wei), and by float rounding (1e-9 relative is far above it).
    assert abs(fast - exact) <= 1e-9 * exact + 0.5 / d + 1e-18
    # With each reserve's own threshold the float path is the untruncated average: the integer HF is at most that,
    # and lower by at most the truncation, (C - 1) / 1e4 / D, plus the same roundings.
    coll, lts, debt = _float_inputs(data, reserves, per_reserve_lt=True, book=book)
    untruncated = float(aave_health_factor(coll, lts, debt))
    slack = 1e-12 * untruncated + 0.5 / d + 1e-18
    assert exact <= untruncated + slack
    assert untruncated - exact <= max(c - 1, 0) / BPS / d + slack


@FEW
@given(books=st.lists(aave_books(max_reserves=3), min_size=1, max_size=4))
def test_aave_float_path_vectorized_over_wallets_equals_one_by_one(books: list[AaveBook]) -> None:
    rows = []
    for book in books:
        data = _data(book)
        coll, lts, debt = _float_inputs(data, book[0], per_reserve_lt=True, book=book)
        pad = 3 - coll.shape[0]
        rows.append((np.pad(coll, (0, pad)), np.pad(lts, (0, pad)), np.pad(debt, (0, pad))))
    coll_m, lts_m, debt_m = (np.stack(x) for x in zip(*rows, strict=True))
    together = aave_health_factor(coll_m, lts_m, debt_m)
    assert together.shape == (len(books),)
    alone = np.array([float(aave_health_factor(*r)) for r in rows])
    np.testing.assert_allclose(together, alone, rtol=1e-15)


usd = st.floats(0.0, 1e12, allow_subnormal=True)


@FEW
@given(
    coll=st.lists(st.floats(1e-6, 1e12), min_size=1, max_size=6),
    lt_bps=st.lists(st.integers(1, BPS), min_size=6, max_size=6),
    debt=st.lists(usd, min_size=6, max_size=6),
    bonus=st.floats(0.0, 0.2),
)
@example(coll=[1.0], lt_bps=[5_000] * 6, debt=[5e-324] * 6, bonus=0.05).via("overflow to inf warned before the fix")
def test_aave_float_health_below_one_iff_the_liquidation_rule_fires(
    coll: list[float], lt_bps: list[int], debt: list[float], bonus: float
) -> None:
    n = len(coll)
    c = np.array(coll)
    lt = np.array(lt_bps[:n]) / BPS
    d = np.array(debt[:n])
    hf = float(aave_health_factor(c, lt, d))
    w, total_d = float((c * lt).sum(axis=-1)), float(d.sum(axis=-1))
    fired = int(lending_liquidation([c.sum()], [w], [total_d], bonus, CLOSE_FACTOR, FULL_CLOSE_HF).calls[0]) > 0
    assert (hf < 1.0) == fired


# ======================================================================================================
# Morpho Blue
# ======================================================================================================
LLTVS = st.integers(1, WAD - 1)


@st.composite
def morpho_positions(draw: st.DrawFn) -> tuple[int, int, MorphoMarketState, int, int]:
    tba = draw(st.integers(0, 10**30))
    tbs = draw(st.integers(0, 10**36))
    market = MorphoMarketState(draw(st.integers(tba, 10**31)), draw(st.integers(0, 10**37)), tba, tbs, 0, 0)
    collateral = draw(st.integers(0, 10**30))
    shares = draw(st.integers(0, 10**36))
    price = draw(st.integers(0, 10**45))
    return collateral, shares, market, price, draw(LLTVS)


def _h(c: int, s: int, m: MorphoMarketState, p: int, lltv: int) -> int:
    h = position_health(c, s, m, p, lltv).health_wad
    return UINT256_MAX if h is None else h


def _morpho_band(c: int, s: int, m: MorphoMarketState, p: int, lltv: int) -> tuple[Fraction, Fraction]:
    """Where ``health_wad`` must lie: ``cap`` (two round-downs) is in (cap* - 2, cap*], ``borrowed`` (a round-up)
    in [b*, b* + 1), the final division rounds down: (WAD (cap* - 2) / (b* + 1) - 1, WAD cap* / b*]."""
    cap = Fraction(c * p * lltv, 10**36 * WAD)
    b = Fraction(s * (m.total_borrow_assets + 1), m.total_borrow_shares + 10**6)
    return WAD * (cap - 2) / (b + 1) - 1, WAD * cap / b


@PROPS
@given(pos=morpho_positions())
def test_morpho_health_below_one_iff_unhealthy(pos: tuple[int, int, MorphoMarketState, int, int]) -> None:
    c, s, m, p, lltv = pos
    ph = position_health(c, s, m, p, lltv)
    assert ph.healthy == is_healthy(c, s, m, p, lltv)
    if s == 0:
        assert ph.health_wad is None
        assert ph.healthy
    else:
        assert ph.health_wad is not None
        assert (ph.health_wad < WAD) == (not ph.healthy)
        lo, hi = _morpho_band(c, s, m, p, lltv)
        assert lo < ph.health_wad <= hi
    for v in (ph.borrowed_raw, ph.max_borrow_raw, ph.collateral_value_raw, ph.liquidation_incentive_factor_wad,
              ph.max_borrow_increase_raw):
        assert type(v) is int


@FEW
@given(pos=morpho_positions(), dc=st.integers(0, 10**30), dp=st.integers(0, 10**40), ds=st.integers(0, 10**30),
       dl=st.integers(0, WAD))
def test_morpho_health_is_monotone(
    pos: tuple[int, int, MorphoMarketState, int, int], dc: int, dp: int, ds: int, dl: int
) -> None:
    c, s, m, p, lltv = pos
    h = _h(c, s, m, p, lltv)
    assert _h(c + dc, s, m, p, lltv) >= h  # more collateral
    assert _h(c, s, m, p + dp, lltv) >= h  # a higher collateral price
    assert _h(c, s + ds, m, p, lltv) <= h  # more debt
    assert _h(c, s, m, p, min(lltv + dl, WAD - 1)) >= h  # a higher LLTV


@PROPS
@given(pos=morpho_positions(), k=st.integers(2, 10**9))
def test_morpho_health_is_scale_invariant(pos: tuple[int, int, MorphoMarketState, int, int], k: int) -> None:
    c, s, m, p, lltv = pos
    assume(s > 0)
    one, many = _h(c, s, m, p, lltv), _h(k * c, k * s, m, p, lltv)
    lo1, hi1 = _morpho_band(c, s, m, p, lltv)
    lok, hik = _morpho_band(k * c, k * s, m, p, lltv)
    assert hi1 == hik  # the unrounded health is exactly scale-invariant
    assert lo1 < one <= hi1
    assert lok < many <= hik
    assert abs(many - one) <= hi1 - min(lo1, lok)


@PROPS
@given(pos=morpho_positions())
def test_morpho_float_path_agrees_with_the_integer_path(pos: tuple[int, int, MorphoMarketState, int, int]) -> None:
    c, s, m, p, lltv = pos
    fast = float(morpho_health_factor_raw([c], [s], m.total_borrow_assets, m.total_borrow_shares, [p], [lltv])[0])
    if s == 0:
        assert fast == math.inf
        return
    exact = Fraction(_h(c, s, m, p, lltv), WAD)
    lo, hi = _morpho_band(c, s, m, p, lltv)
    # 1e-9 relative beyond the integer path's own roundings (the width of its band)
    assert abs(Fraction(fast) - exact) <= Fraction(1e-9) * Fraction(fast) + (hi - lo) / WAD + Fraction(1, WAD)


@PROPS
@given(c=st.floats(1e-9, 1e12), px=st.floats(1e-9, 1e9), lltv=st.floats(0.01, 0.99), d=usd, lif=st.floats(1.0, 1.15))
@example(c=1.0, px=1.0, lltv=0.5, d=5e-324, lif=1.1).via("overflow to inf warned before the fix")
def test_morpho_float_health_below_one_iff_the_liquidation_rule_fires(
    c: float, px: float, lltv: float, d: float, lif: float
) -> None:
    coll_usd = c * px
    hf = float(morpho_health_factor(coll_usd, 1.0, lltv, d))
    fired = bool(isolated_liquidation([coll_usd], [coll_usd * lltv], [d], lif).calls[0])
    assert (hf < 1.0) == fired
    # the liquidation price (loan per collateral) is where health is 1
    liq = float(morpho_liquidation_price(c, d, lltv))
    if d == 0:
        assert math.isnan(liq)
    elif 1e-300 < liq < math.inf:  # a normal float: subnormal prices carry too few digits for a relative check
        assert float(morpho_health_factor(c, liq, lltv, d)) == pytest.approx(1.0, rel=1e-12)


# ======================================================================================================
# perps
# ======================================================================================================
@st.composite
def tier_tables(draw: st.DrawFn, max_tiers: int = 4) -> tuple[list[float], list[float]]:
    n = draw(st.integers(1, max_tiers))
    bounds = sorted(set(draw(st.lists(st.floats(1e2, 1e9), min_size=n - 1, max_size=n - 1))))
    mmr = draw(st.lists(st.floats(1e-4, 0.5), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    return [0.0, *bounds], mmr


@PROPS
@given(e=st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True),
       m=st.floats(0.0, allow_infinity=False, allow_subnormal=True))
@example(e=math.nextafter(1.5, 0.0), m=1.5).via("the float just below the requirement")
@example(e=-1.0, m=0.0).via("negative equity and no requirement")
@example(e=1.0, m=5e-324).via("overflow to inf warned (an error under -W error) before the fix")
def test_perp_health_below_one_iff_liquidatable(e: float, m: float) -> None:
    h = float(margin_health([e], [m])[0])
    assert (h < 1.0) == bool(liquidatable([e], [m])[0])
    if m == 0:
        assert math.isinf(h)


@FEW
@given(tiers=tier_tables(), a=st.floats(0.0, 1e10), b=st.floats(0.0, 1e10))
def test_perp_maintenance_is_monotone_and_continuous_in_the_notional(
    tiers: tuple[list[float], list[float]], a: float, b: float
) -> None:
    lower, mmr = tiers
    lo, hi = min(a, b), max(a, b)
    mm_lo, mm_hi = maintenance_margin([lo, hi], [lower, lower], [mmr, mmr])
    ded = tier_deductions([lower], [mmr])[0]
    tol = 1e-12 * (hi * max(mmr) + float(np.abs(ded).sum()))
    assert mm_hi >= mm_lo - tol
    assert mm_lo >= -tol
    for t in range(1, len(lower)):  # at each tier bound the requirement from above meets the one from below
        x = lower[t]
        from_below = x * mmr[t - 1] - ded[t - 1]
        tol_x = 1e-12 * (x * max(mmr) + float(np.abs(ded).sum()))
        assert float(maintenance_margin([x], [lower], [mmr])[0]) == pytest.approx(from_below, abs=tol_x)


@st.composite
def perp_books(draw: st.DrawFn, *, side: int = 0, max_positions: int = 4) -> PerpBook:
    n = draw(st.integers(1, max_positions))
    sizes = []
    for _ in range(n):
        s = draw(st.floats(1e-6, 1e4))
        sgn = side or draw(st.sampled_from([-1, 1]))
        sizes.append(sgn * s)
    marks = draw(st.lists(st.floats(1e-2, 1e5), min_size=n, max_size=n))
    lower, mmr = draw(tier_tables())
    cash = draw(st.floats(-1e9, 1e9))
    return PerpBook.build(sizes, marks, [0] * n, [cash], lower, mmr)


def _scale_of(book: PerpBook) -> float:
    """Gross USD amounts behind the equity: |cash| + Σ |size × mark| (float error is relative to this)."""
    return float(abs(book.cash_usd).sum() + np.abs(book.size * book.mark_usd).sum())


def _gross_maintenance(book: PerpBook) -> float:
    """Gross USD amounts behind the requirement: Σ |size × mark| × max mmr + Σ |deductions|."""
    ded = tier_deductions(book.tier_lower_usd, book.tier_mmr)
    return float((np.abs(book.size * book.mark_usd) * book.tier_mmr.max(axis=1)).sum() + np.abs(ded).sum())


@FEW
@given(book=perp_books(), more=st.floats(0.0, 1e9), k=st.floats(1e-3, 1e3))
def test_perp_health_rises_with_cash_and_is_scale_invariant(book: PerpBook, more: float, k: float) -> None:
    e, m = account_equity(book), account_maintenance(book)
    h = margin_health(e, m)[0]
    richer = PerpBook(book.size, book.mark_usd, book.account, book.cash_usd + more, book.tier_lower_usd,
                      book.tier_mmr)
    assert margin_health(account_equity(richer), account_maintenance(richer))[0] >= h
    # every USD amount and size (and so the tier bounds) × k: equity and requirement × k, health unchanged up to the
    # float rounding of the sums (relative to the gross amounts, not to a possibly cancelled equity)
    scaled = PerpBook(book.size * k, book.mark_usd, book.account, book.cash_usd * k, book.tier_lower_usd * k,
                      book.tier_mmr)
    ek, mk = account_equity(scaled), account_maintenance(scaled)
    gross_e, gross_m = _scale_of(book), _gross_maintenance(book)
    assert mk[0] == pytest.approx(k * m[0], rel=1e-12, abs=1e-12 * k * gross_m)
    assert ek[0] == pytest.approx(k * e[0], rel=1e-12, abs=1e-12 * k * gross_e)
    if m[0] > 0:
        hk = margin_health(ek, mk)[0]
        assert hk == pytest.approx(h, rel=1e-12, abs=1e-12 * (gross_e + abs(h) * gross_m) / m[0])
        if abs(e[0] - m[0]) > 1e-12 * (gross_e + gross_m):
            assert bool(liquidatable(ek, mk)[0]) == bool(liquidatable(e, m)[0])


@FEW
@given(side=st.sampled_from([-1, 1]), data=st.data(), up=st.floats(1.0, 10.0))
def test_perp_a_higher_price_helps_longs_and_hurts_shorts(side: int, data: st.DataObject, up: float) -> None:
    """``equity - maintenance`` moves with slope ``s - |s| mmr`` (``mmr < 1``): up for longs, down for shorts."""
    book = data.draw(perp_books(side=side))
    higher = book.with_marks(book.mark_usd * up)
    margin_now = float(account_equity(book)[0] - account_maintenance(book)[0])
    margin_up = float(account_equity(higher)[0] - account_maintenance(higher)[0])
    tol = 1e-12 * (_scale_of(book) + _scale_of(higher))
    if side > 0:
        assert margin_up >= margin_now - tol
    else:
        assert margin_up <= margin_now + tol


@FEW
@given(book=perp_books(max_positions=1))
def test_perp_equity_meets_maintenance_at_the_liquidation_price(book: PerpBook) -> None:
    px = float(liquidation_price(book)[0])
    if math.isnan(px):
        # ``equity - maintenance`` is monotone in the price and has no positive root: its sign is the same at every
        # price — a long that no price liquidates, or a short (cash <= 0) that every price does
        status = [bool(liquidatable(account_equity(b), account_maintenance(b))[0])
                  for b in (book.with_marks([1e-6]), book, book.with_marks([1e9]))]
        assert status in ([False] * 3, [True] * 3)
        assert status[0] == (book.size[0] < 0)
        return
    at = book.with_marks([px])
    gap = float(account_equity(at)[0] - account_maintenance(at)[0])
    assert abs(gap) <= 1e-9 * (_scale_of(book) + _scale_of(at))


@FEW
@given(
    sizes=st.lists(st.floats(-1e4, 1e4), min_size=0, max_size=4),
    data=st.data(),
    usdc=st.floats(-1e9, 1e9),
)
def test_dydx_health_figures_below_one_iff_liquidatable(sizes: list[float], data: st.DataObject, usdc: float) -> None:
    n = len(sizes)
    oracle = data.draw(st.lists(st.floats(1e-2, 1e5), min_size=n, max_size=n))
    mmf = data.draw(st.lists(st.floats(1e-3, 0.5), min_size=n, max_size=n))
    fig = DydxFigures(
        account="dydx1/0", market=tuple(f"M{i}" for i in range(n)), size=np.array(sizes, dtype=np.float64),
        oracle_usd=np.array(oracle, dtype=np.float64), initial_margin_fraction=np.array(mmf, dtype=np.float64) * 2,
        maintenance_margin_fraction=np.array(mmf, dtype=np.float64), usdc_usd=usdc, reported_equity_usd=0.0,
        reported_free_collateral_usd=0.0,
    )
    health = dydx_health(fig)
    assert bool(health.health[0] < 1.0) == bool(health.liquidatable[0])
    if not any(sizes):
        assert math.isinf(health.health[0])


def test_a_subnormal_position_size_has_no_liquidation_price_and_no_warning() -> None:
    """Regression (shrunk by the dYdX property above): a size of 5e-324 made ``num / den`` overflow, and the
    RuntimeWarning was an error under the suite's ``filterwarnings = error``."""
    book = PerpBook.build([5e-324], [1.0], [0], [2.0], [0.0], [0.1])
    assert np.isnan(liquidation_price(book)[0])
    assert margin_health(account_equity(book), account_maintenance(book))[0] == np.inf
