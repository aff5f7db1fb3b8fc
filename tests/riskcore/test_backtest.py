"""Backtest: Kupiec and Christoffersen against hand-worked and textbook cases, and the rolling VaR on real data
against direct recomputation (skfolio for the historical window, the EWMA covariance path for the parametric)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import skfolio.measures as skm
from scipy import stats

from aggregator.marketdata import MarketDataNotFoundError, PriceHistory, load_prices
from riskcore.backtest import (
    calibrate_lambda,
    christoffersen_independence,
    coverage_test,
    kupiec_pof,
    rolling_var,
)
from riskcore.ewma import ewma_covariance_series

CHI2_1_95 = stats.chi2.ppf(0.95, 1)  # 3.841…


# --- Kupiec --------------------------------------------------------------------------------------------------


def test_kupiec_hand_worked() -> None:
    # No exceedance in 250 days at 99%: LR = -2 · 250 · ln 0.99 = 5.0252
    lr, p = kupiec_pof(0, 250, 0.99)
    assert float(lr) == pytest.approx(-2 * 250 * math.log(0.99), rel=1e-14)
    assert float(lr) == pytest.approx(5.025167926, rel=1e-9)
    assert float(p) == pytest.approx(stats.chi2.sf(float(lr), 1), rel=1e-12)
    # 5 in 250 at 99%: LR = -2 [245 ln .99 + 5 ln .01 - 245 ln .98 - 5 ln .02]
    lr, _ = kupiec_pof(5, 250, 0.99)
    ref = -2 * (245 * math.log(0.99) + 5 * math.log(0.01) - 245 * math.log(0.98) - 5 * math.log(0.02))
    assert float(lr) == pytest.approx(ref, rel=1e-13)
    assert float(lr) == pytest.approx(1.9568, abs=5e-5)
    # exactly as expected: LR = 0, p = 1
    lr, p = kupiec_pof(10, 1000, 0.99)
    assert float(lr) == pytest.approx(0.0, abs=1e-12)
    assert float(p) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("n", "x"), [(250, 0), (250, 3), (1000, 27), (773, 13), (1295, 250), (100, 100)])
def test_kupiec_is_the_binomial_likelihood_ratio(n: int, x: int) -> None:
    for alpha in (0.95, 0.99):
        lr, p = kupiec_pof(x, n, alpha)
        direct = 2 * (stats.binom.logpmf(x, n, x / n) - stats.binom.logpmf(x, n, 1 - alpha))
        assert float(lr) == pytest.approx(direct, rel=1e-10, abs=1e-10)
        assert float(p) == pytest.approx(stats.chi2.sf(direct, 1), rel=1e-8, abs=1e-300)


@pytest.mark.parametrize(
    ("alpha", "n", "low", "high"),
    [(0.99, 510, 1, 11), (0.99, 1000, 4, 17), (0.95, 255, 6, 21), (0.95, 510, 16, 36), (0.95, 1000, 37, 65)],
)
def test_kupiec_non_rejection_regions_of_the_textbook(alpha: float, n: int, low: int, high: int) -> None:
    # Jorion, Value at Risk (3rd ed.), Table 6-2: at 95% test confidence, accept low < x < high.
    x = np.arange(0, n // 5)
    lr, p = kupiec_pof(x, np.full_like(x, n), alpha)
    accepted = x[lr < CHI2_1_95]
    assert (accepted.min(), accepted.max()) == (low + 1, high - 1)
    np.testing.assert_array_equal(p >= 0.05, lr < CHI2_1_95)


def test_kupiec_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="n_exceed"):
        kupiec_pof(5, 4, 0.99)
    with pytest.raises(ValueError, match="n_exceed"):
        kupiec_pof(0, 0, 0.99)


# --- Christoffersen ------------------------------------------------------------------------------------------


def _direct_markov_lr(seq: list[int]) -> float:
    """-2 log of (iid Bernoulli likelihood / first-order Markov likelihood), both at their MLEs, per transition."""
    pairs = list(itertools.pairwise(seq))
    pi = sum(b for _, b in pairs) / len(pairs)
    from_state = {s: [b for a, b in pairs if a == s] for s in (0, 1)}
    pi_s = {s: (sum(v) / len(v) if v else 0.0) for s, v in from_state.items()}
    ll_null = sum(stats.bernoulli.logpmf(b, pi) for _, b in pairs)
    ll_alt = sum(stats.bernoulli.logpmf(b, pi_s[a]) for a, b in pairs)
    return float(-2 * (ll_null - ll_alt))


def test_christoffersen_hand_worked() -> None:
    # 0 1 1 0 0 0 1 0 0 0: n00 = 4, n01 = 2, n10 = 2, n11 = 1 → π01 = π11 = π = 1/3 → LR = 0
    lr, p, counts = christoffersen_independence([0, 1, 1, 0, 0, 0, 1, 0, 0, 0])
    assert counts.tolist() == [4, 2, 2, 1]
    assert float(lr) == pytest.approx(0.0, abs=1e-12)
    assert float(p) == pytest.approx(1.0, abs=1e-6)
    # 0 0 0 1 1 1 0 0 0 0: n00 = 5, n01 = 1, n10 = 1, n11 = 2 → π01 = 1/6, π11 = 2/3, π = 1/3
    seq = [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    lr, p, counts = christoffersen_independence(seq)
    assert counts.tolist() == [5, 1, 1, 2]
    ln = math.log
    ref = -2 * (6 * ln(2 / 3) + 3 * ln(1 / 3) - 5 * ln(5 / 6) - ln(1 / 6) - ln(1 / 3) - 2 * ln(2 / 3))
    assert float(lr) == pytest.approx(ref, rel=1e-13)
    assert float(lr) == pytest.approx(_direct_markov_lr(seq), rel=1e-12)
    assert float(p) == pytest.approx(stats.chi2.sf(ref, 1), rel=1e-12)


def test_christoffersen_equals_the_direct_markov_likelihood_on_random_sequences() -> None:
    rng = np.random.default_rng(1)
    for rate in (0.01, 0.05, 0.2):
        seq = (rng.random(600) < rate).astype(int)
        seq[100:103] = 1  # a cluster
        lr, _, _ = christoffersen_independence(seq)
        assert float(lr) == pytest.approx(_direct_markov_lr(seq.tolist()), rel=1e-10, abs=1e-12)


def test_no_exceedance_is_independent_and_vectorized_rows_match() -> None:
    lr, _, counts = christoffersen_independence(np.zeros((3, 50), dtype=bool))
    np.testing.assert_array_equal(lr, 0.0)
    np.testing.assert_array_equal(counts[:, 0], 49)
    rng = np.random.default_rng(2)
    many = rng.random((5, 300)) < 0.05
    lr_many, _, _ = christoffersen_independence(many)
    for i in range(5):
        assert float(lr_many[i]) == float(christoffersen_independence(many[i])[0])


def test_coverage_on_sub_samples_counts_only_transitions_inside() -> None:
    seq = np.zeros(20, dtype=bool)
    seq[[4, 9, 10, 15]] = True  # 9 → 10 straddles the split
    first = np.arange(20) < 10
    a, b, whole = coverage_test(seq, 0.95, first), coverage_test(seq, 0.95, ~first), coverage_test(seq, 0.95)
    assert (int(a.n_obs), int(a.n_exceed), int(b.n_obs), int(b.n_exceed)) == (10, 2, 10, 2)
    assert int(whole.n_exceed) == 4
    assert a.transitions.tolist() == [6, 2, 1, 0]  # days 0..9: 3→4 and 8→9 enter, 4→5 leaves
    assert b.transitions.tolist() == [6, 1, 2, 0]  # days 10..19: 10→11, 15→16 leave, 14→15 enters; 9→10 not counted
    assert int(whole.transitions[3]) == 1
    assert float(a.expected) == pytest.approx(0.5)
    assert float(a.lr_cc) == pytest.approx(float(a.lr_pof + a.lr_ind), rel=1e-15)
    assert float(a.p_cc) == pytest.approx(stats.chi2.sf(float(a.lr_cc), 2), rel=1e-12)


# --- rolling VaR on the real history -------------------------------------------------------------------------

SYMBOLS = ("ETH", "BTC", "USDC")
BOOKS = np.array([[400_000.0, 250_000.0, -300_000.0], [1_000_000.0, 0.0, 0.0]])


@pytest.fixture(scope="module")
def prices() -> PriceHistory:
    try:
        return load_prices(SYMBOLS)
    except MarketDataNotFoundError as exc:
        pytest.skip(f"real market data not available: {exc}")


@pytest.mark.parametrize("alpha", [0.95, 0.99])
def test_rolling_var_equals_direct_recomputation_on_real_data(prices: PriceHistory, alpha: float) -> None:
    r = prices.simple_returns()
    window = 250
    rv = rolling_var(r, BOOKS, alpha=alpha, window=window)
    n_eval = r.shape[0] - window
    assert rv.index.tolist() == list(range(window, r.shape[0]))
    assert rv.pnl.shape == rv.var_historical.shape == rv.var_ewma.shape == (2, n_eval)
    np.testing.assert_allclose(rv.pnl, (r @ BOOKS.T).T[:, window:], rtol=1e-15)
    cov = ewma_covariance_series(r)
    z = stats.norm.ppf(alpha)
    es_factor = stats.norm.pdf(z) / (1 - alpha)
    for col in [0, 1, 500, 1290, 1300, n_eval - 1]:
        t = window + col
        past = r[t - window : t] @ BOOKS.T  # (window, P): the book's P&L on the window before t
        np.testing.assert_allclose(rv.var_historical[:, col], skm.value_at_risk(past, beta=alpha), rtol=1e-10)
        np.testing.assert_allclose(rv.es_historical[:, col], skm.cvar(past, beta=alpha), rtol=1e-10)
        sigma = np.sqrt(np.einsum("pi,ij,pj->p", BOOKS, cov[t - 1], BOOKS))
        np.testing.assert_allclose(rv.var_ewma[:, col], z * sigma, rtol=1e-10)
        np.testing.assert_allclose(rv.es_ewma[:, col], es_factor * sigma, rtol=1e-10)
    np.testing.assert_array_equal(rv.exceed_historical, rv.pnl < -rv.var_historical)


def test_rolling_var_does_not_look_ahead(prices: PriceHistory) -> None:
    r = prices.simple_returns()
    base = rolling_var(r, BOOKS, alpha=0.99)
    t = 1400
    shocked = r.copy()
    shocked[t:] *= 3.0  # change day t and everything after it
    after = rolling_var(shocked, BOOKS, alpha=0.99)
    upto = t - 250 + 1  # forecasts for days 250 .. t use nothing from day t on
    np.testing.assert_array_equal(after.var_historical[:, :upto], base.var_historical[:, :upto])
    np.testing.assert_array_equal(after.var_ewma[:, :upto], base.var_ewma[:, :upto])
    assert not np.array_equal(after.var_ewma[:, upto], base.var_ewma[:, upto])


def test_in_and_out_of_sample_split_the_days(prices: PriceHistory) -> None:
    r = prices.simple_returns()
    dates = prices.dates[1:]
    rv = rolling_var(r, BOOKS, alpha=0.99)
    in_mask = dates[rv.index] <= np.datetime64("2022-12-31")
    out_mask = (dates[rv.index] >= np.datetime64("2023-01-01")) & (dates[rv.index] <= np.datetime64("2025-02-11"))
    assert not np.any(in_mask & out_mask)
    assert np.all(in_mask | out_mask)
    whole = coverage_test(rv.exceed_historical, 0.99)
    a, b = coverage_test(rv.exceed_historical, 0.99, in_mask), coverage_test(rv.exceed_historical, 0.99, out_mask)
    np.testing.assert_array_equal(a.n_exceed + b.n_exceed, whole.n_exceed)
    np.testing.assert_array_equal(a.n_obs + b.n_obs, whole.n_obs)
    days = (np.datetime64("2025-02-11") - np.datetime64("2023-01-01")).astype(np.int64) + 1
    assert int(b.n_obs[0]) == days


def test_calibration_uses_only_the_in_sample_days(prices: PriceHistory) -> None:
    r = prices.simple_returns()
    dates = prices.dates[1:]
    in_sample = dates <= np.datetime64("2022-12-31")
    grid = (0.90, 0.94, 0.97, 0.99)
    lam, scores = calibrate_lambda(r, BOOKS, in_sample, grid)
    assert lam == grid[int(np.argmin(scores))]
    garbled = r.copy()
    garbled[~in_sample] = np.random.default_rng(0).permutation(garbled[~in_sample]) * 5
    lam2, scores2 = calibrate_lambda(garbled, BOOKS, in_sample, grid)
    assert lam2 == lam
    np.testing.assert_array_equal(scores2, scores)


def test_rolling_var_refuses_bad_windows(prices: PriceHistory) -> None:
    r = prices.simple_returns()
    with pytest.raises(ValueError, match="window"):
        rolling_var(r, BOOKS, window=r.shape[0])
    with pytest.raises(ValueError, match="seed"):
        rolling_var(r, BOOKS, window=20)
