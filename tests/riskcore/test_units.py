from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from riskcore.fixedpoint import mul_div_down, mul_div_up, percent_mul, ray_div, ray_mul, wad_div, wad_mul
from riskcore.units import from_raw, from_raw_array, to_raw


def test_from_raw_is_correctly_rounded_for_huge_integers() -> None:
    raw = 2**256 - 1
    assert from_raw(raw, 18) == float(Fraction(raw, 10**18))
    assert from_raw(-123_456_789, 8) == -1.23456789
    with pytest.raises(TypeError):
        from_raw(1.5, 18)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_raw(True, 18)


def test_to_raw_is_exact_and_refuses_floats_and_excess_precision() -> None:
    assert to_raw("1234.000001", 6) == 1_234_000_001
    assert to_raw(Decimal("0.1"), 18) == 10**17
    with pytest.raises(TypeError):
        to_raw(0.1, 18)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than 6 decimals"):
        to_raw("0.0000001", 6)


def test_from_raw_array_checks_lengths() -> None:
    out = from_raw_array([10**6, 3 * 10**18], [6, 18])
    np.testing.assert_array_equal(out, [1.0, 3.0])
    with pytest.raises(ValueError, match="2 amounts but 1 decimals"):
        from_raw_array([1, 2], [6])


def test_half_up_and_directed_rounding() -> None:
    assert ray_mul(1, 5 * 10**26) == 1  # 0.5 rounds up
    assert ray_mul(1, 5 * 10**26 - 1) == 0
    assert wad_mul(3, 5 * 10**17) == 2  # 1.5 → 2
    assert wad_div(1, 3) == 333_333_333_333_333_333
    assert wad_div(2, 3) == 666_666_666_666_666_667
    assert ray_div(1, 2) == 5 * 10**26
    assert percent_mul(1, 5_000) == 1
    assert percent_mul(1, 4_999) == 0
    assert mul_div_down(7, 3, 2) == 10
    assert mul_div_up(7, 3, 2) == 11
    with pytest.raises(ZeroDivisionError):
        wad_div(1, 0)
