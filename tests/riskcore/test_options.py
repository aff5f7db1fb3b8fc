"""Black-76: against an independent scalar reference (math.erf), vollib, finite differences, parity, limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riskcore.options import DAYS_PER_YEAR, black76_greeks, black76_price, scenario_values
from riskcore.scenarios import ScenarioSet, deribit_grid, user_scenarios

# (F, K, T years, sigma, r): ATM / ITM / OTM, short and long expiries, with and without discounting.
CASES = [
    (100.0, 100.0, 0.5, 0.6, 0.0),
    (100.0, 80.0, 0.1, 0.8, 0.0),
    (100.0, 130.0, 1.5, 0.5, 0.03),
    (3_000.0, 3_500.0, 7 / 365, 0.7, 0.05),
    (60_000.0, 45_000.0, 90 / 365, 0.55, 0.0),
    (49.0, 50.0, 0.3846, 0.2, 0.05),
]


def _n(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def reference(f: float, k: float, t: float, v: float, r: float, call: bool) -> dict[str, float]:
    """Textbook Black-76, one option at a time, written independently of the module (math.erf for N)."""
    df = math.exp(-r * t)
    d1 = (math.log(f / k) + 0.5 * v * v * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    if call:
        price = df * (f * _n(d1) - k * _n(d2))
        delta = df * _n(d1)
    else:
        price = df * (k * _n(-d2) - f * _n(-d1))
        delta = -df * _n(-d1)
    gamma = df * _phi(d1) / (f * v * math.sqrt(t))
    vega = df * f * _phi(d1) * math.sqrt(t)
    theta = r * price - df * f * _phi(d1) * v / (2.0 * math.sqrt(t))
    return {"price": price, "delta": delta, "gamma": gamma, "vega": vega, "theta": theta}


@pytest.mark.parametrize("call", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_matches_scalar_reference(case: tuple[float, ...], call: bool) -> None:
    f, k, t, v, r = case
    ref = reference(f, k, t, v, r, call)
    g = black76_greeks(f, k, t, v, call, r)
    assert float(g.price) == pytest.approx(ref["price"], rel=1e-12, abs=1e-12 * f)
    assert float(g.delta) == pytest.approx(ref["delta"], rel=1e-12, abs=1e-14)
    assert float(g.gamma) == pytest.approx(ref["gamma"], rel=1e-12)
    assert float(g.vega) == pytest.approx(ref["vega"], rel=1e-12)
    assert float(g.theta_per_year) == pytest.approx(ref["theta"], rel=1e-12)
    assert float(g.theta_per_day) == pytest.approx(ref["theta"] / 365.0, rel=1e-12)
    assert float(black76_price(f, k, t, v, call, r)) == float(g.price)


@pytest.mark.parametrize("call", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_matches_vollib(case: tuple[float, ...], call: bool) -> None:
    black = pytest.importorskip("vollib.black")
    greeks = pytest.importorskip("vollib.black.greeks.analytical")
    f, k, t, v, r = case
    flag = "c" if call else "p"
    g = black76_greeks(f, k, t, v, call, r)
    assert float(g.price) == pytest.approx(black.black(flag, f, k, t, r, v), rel=1e-10, abs=1e-12 * f)
    assert float(g.delta) == pytest.approx(greeks.delta(flag, f, k, t, r, v), rel=1e-10, abs=1e-14)
    assert float(g.gamma) == pytest.approx(greeks.gamma(flag, f, k, t, r, v), rel=1e-10)
    # vollib's vega is per vol point (×0.01) and its theta per calendar day (÷365).
    assert float(g.vega_per_vol_point) == pytest.approx(greeks.vega(flag, f, k, t, r, v), rel=1e-10)
    assert float(g.theta_per_day) == pytest.approx(greeks.theta(flag, f, k, t, r, v), rel=1e-10)


def test_published_values() -> None:
    # vollib's documented example: F=49, K=50, r=5%, T=0.3846, σ=20%.
    g = black76_greeks(49.0, 50.0, 0.3846, 0.2, [True, False], 0.05)
    assert g.delta[0] == pytest.approx(0.45107017482201828, abs=1e-6)
    assert g.vega_per_vol_point[0] == pytest.approx(0.118317785624, abs=1e-6)
    assert g.theta_per_day[0] == pytest.approx(-0.00816236877462, abs=1e-6)
    assert g.theta_per_day[1] == pytest.approx(-0.00802799155312, abs=1e-6)


@pytest.mark.parametrize("call", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_greeks_equal_finite_differences(case: tuple[float, ...], call: bool) -> None:
    f, k, t, v, r = case

    def p(ff: float = f, tt: float = t, vv: float = v) -> float:
        return float(black76_price(ff, k, tt, vv, call, r))

    g = black76_greeks(f, k, t, v, call, r)
    h = 1e-4 * f
    assert float(g.delta) == pytest.approx((p(ff=f + h) - p(ff=f - h)) / (2 * h), rel=1e-6, abs=1e-9)
    hg = 1e-3 * f
    fd_gamma = (p(ff=f + hg) - 2 * p() + p(ff=f - hg)) / hg**2
    assert float(g.gamma) == pytest.approx(fd_gamma, rel=1e-4)
    hv = 1e-5
    assert float(g.vega) == pytest.approx((p(vv=v + hv) - p(vv=v - hv)) / (2 * hv), rel=1e-6)
    ht = 1e-6
    fd_theta = -(p(tt=t + ht) - p(tt=t - ht)) / (2 * ht)  # theta = −∂V/∂T (time passing)
    assert float(g.theta_per_year) == pytest.approx(fd_theta, rel=1e-5)


def test_put_call_parity_vectorized() -> None:
    rng = np.random.default_rng(7)
    n = 1_000
    f = rng.uniform(50, 150, n)
    k = rng.uniform(50, 150, n)
    t = rng.uniform(0, 2, n)
    t[:50] = 0.0  # expired: intrinsic values
    v = rng.uniform(0, 1.5, n)
    v[50:100] = 0.0
    r = rng.uniform(0, 0.1, n)
    call = black76_greeks(f, k, t, v, True, r)
    put = black76_greeks(f, k, t, v, False, r)
    df = np.exp(-r * t)
    np.testing.assert_allclose(call.price - put.price, df * (f - k), rtol=0, atol=1e-10)
    np.testing.assert_allclose(call.delta - put.delta, df, rtol=0, atol=1e-12)
    np.testing.assert_allclose(call.gamma, put.gamma, rtol=1e-12, atol=0)
    np.testing.assert_allclose(call.vega, put.vega, rtol=1e-12, atol=0)
    np.testing.assert_allclose(call.theta_per_year - put.theta_per_year, r * df * (f - k), rtol=0, atol=1e-9)
    assert call.price.shape == (n,)
    assert np.all(call.price >= 0)
    assert np.all(put.price >= 0)


def test_degenerate_inputs_are_discounted_intrinsic_value() -> None:
    f = np.array([120.0, 80.0, 100.0, 0.0])
    g_call = black76_greeks(f, 100.0, 0.0, 0.5, True, 0.05)
    g_put = black76_greeks(f, 100.0, 0.0, 0.5, False, 0.05)
    np.testing.assert_array_equal(g_call.price, [20.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(g_put.price, [0.0, 20.0, 0.0, 100.0])
    np.testing.assert_array_equal(g_call.delta, [1.0, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(g_put.delta, [0.0, -1.0, -0.5, -1.0])
    for arr in (g_call.gamma, g_call.vega, g_put.gamma, g_put.vega):
        np.testing.assert_array_equal(arr, 0.0)
    # Zero vol with time left: discounted intrinsic, theta is the discounting only.
    z = black76_greeks(120.0, 100.0, 1.0, 0.0, True, 0.05)
    assert float(z.price) == pytest.approx(20.0 * math.exp(-0.05))
    assert float(z.theta_per_year) == pytest.approx(0.05 * 20.0 * math.exp(-0.05))
    # A forward at zero (a −100% scenario): a call is worthless, a put worth the discounted strike.
    assert float(black76_price(0.0, 100.0, 0.5, 0.8, True)) == 0.0
    assert float(black76_price(0.0, 100.0, 0.5, 0.8, False)) == pytest.approx(100.0)


def test_limits_approach_intrinsic() -> None:
    tiny = black76_price([120.0, 80.0], 100.0, 1e-12, 0.5, True)
    np.testing.assert_allclose(tiny, [20.0, 0.0], atol=1e-9)


def test_rejects_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="strike > 0"):
        black76_price(100.0, 0.0, 1.0, 0.5, True)
    with pytest.raises(ValueError, match="vol >= 0"):
        black76_price(100.0, 100.0, 1.0, -0.1, True)
    with pytest.raises(ValueError, match="time_years >= 0"):
        black76_price(100.0, 100.0, -1.0, 0.1, True)


def test_broadcasts_a_strike_ladder_against_vols() -> None:
    strikes = np.array([2_500.0, 3_000.0, 3_500.0])[:, None]
    vols = np.array([0.4, 0.6, 0.8, 1.0])[None, :]
    p = black76_price(3_000.0, strikes, 30 / 365, vols, True)
    assert p.shape == (3, 4)
    assert np.all(np.diff(p, axis=0) < 0)
    assert np.all(np.diff(p, axis=1) > 0)


def test_scenario_values_equal_direct_repricing() -> None:
    s = user_scenarios(
        ("ETH", "BTC"),
        {"eth -20% vol +15": {"ETH": -0.2}, "btc +10%": {"BTC": 0.1}, "flat": {}},
        vol_shifts={"eth -20% vol +15": {"ETH": 0.15}},
        horizon_days=1.0,
    )
    f = np.array([3_000.0, 60_000.0, 3_000.0])
    k = np.array([2_800.0, 65_000.0, 3_200.0])
    t = np.array([30.0, 60.0, 0.5]) / 365  # the third expires inside the 1-day horizon
    v = np.array([0.7, 0.55, 0.9])
    call = np.array([False, True, True])
    und = np.array([0, 1, 0])
    out = scenario_values(f, k, t, v, call, und, s)
    assert out.shape == (3, 3)
    t1 = np.maximum(t - 1 / 365, 0)
    exp = np.array(
        [
            black76_price(f * [0.8, 1, 0.8], k, t1, v + np.array([0.15, 0, 0.15]), call),
            black76_price(f * [1, 1.1, 1], k, t1, v, call),
            black76_price(f, k, t1, v, call),
        ]
    )
    np.testing.assert_allclose(out, exp, rtol=1e-14)
    assert out[0, 2] == 0.0  # expired out of the money after ETH −20%
    assert out[2, 2] == 0.0


def test_scenario_values_use_deribit_vol_rule() -> None:
    grid = deribit_grid(("ETH",), extended_moves=())
    up = grid.names.index("DRB ETH +0/4R vol +0.5")
    down = grid.names.index("DRB ETH +0/4R vol -0.25")
    f, k, v = 3_000.0, 3_000.0, 0.6
    t = 7.5 / 365  # (30/7.5)^0.3 = 4^0.3
    g = 4.0**0.3
    out = scenario_values([f], [k], [t], [v], [True], [0], grid)
    t1 = t - 1 / DAYS_PER_YEAR
    assert out[up, 0] == pytest.approx(float(black76_price(f, k, t1, v * (1 + 0.5 * g), True)), rel=1e-14)
    assert out[down, 0] == pytest.approx(float(black76_price(f, k, t1, v * (1 - 0.25 * g), True)), rel=1e-14)


def test_scenario_values_require_known_underlying_index() -> None:
    s = ScenarioSet(("a",), ("ETH",), np.ones((1, 1)), np.zeros(1), 1.0)
    with pytest.raises(IndexError):
        scenario_values([1.0], [1.0], [1.0], [0.5], [True], [1], s)
