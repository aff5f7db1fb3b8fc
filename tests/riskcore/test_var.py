"""VaR and ES on the real price history against independent references.

References: skfolio's ``value_at_risk`` / ``cvar`` (same convention: lower empirical quantile of the loss,
Rockafellar–Uryasev CVaR), an exact-rank implementation with rational tail sizes written here, numpy's
``quantile(method="inverted_cdf")``, and scipy.stats.norm for the delta-normal measures. Agreement is to a
relative 1e-10.

Monte Carlo is checked against the delta-normal closed form within a stated sampling error: for ``S`` normal
scenarios the VaR estimator's standard error is ``σ sqrt(α(1-α)/S) / φ(z)`` and the ES estimator's is
``σ sqrt((Var[X | X > z] + α (ES₁ - z)²) / (S (1 - α)))`` with ``ES₁ = φ(z)/(1-α)`` and
``Var[X | X > z] = 1 + z ES₁ - ES₁²`` (standard normal); the test allows 4 standard errors.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pytest
import skfolio.measures as skm
from scipy import integrate, stats

from aggregator.marketdata import MarketDataNotFoundError, PriceHistory, load_prices
from riskcore.ewma import ewma_covariance
from riskcore.var import (
    CONFIDENCE_LEVELS,
    HORIZONS_DAYS,
    VarEs,
    bootstrap_scenarios,
    historical_var_es,
    historical_var_es_portfolios,
    horizon_scale,
    monte_carlo_var_es,
    normal_factors,
    normal_scenarios,
    parametric_var_es,
    portfolio_pnl,
    portfolio_sigma,
    scenario_var_es,
    tail_size,
)

ALL = ("BTC", "ETH", "USDC", "USDT", "LINK", "XRP", "ADA", "BNB", "DOGE", "LTC", "MATIC", "SOL", "AVAX", "DOT")
RTOL = 1e-10
ALPHA_TEXT = {0.95: "0.95", 0.99: "0.99", 0.999: "0.999"}


def _load(freq: str) -> PriceHistory:
    try:
        return load_prices(ALL, freq)  # type: ignore[arg-type]
    except MarketDataNotFoundError as exc:
        pytest.skip(f"real market data not available: {exc}")


@pytest.fixture(scope="module")
def daily() -> PriceHistory:
    return _load("1d")


@pytest.fixture(scope="module")
def books() -> npt.NDArray[np.float64]:
    """14 single-asset books of $1M, a hedged-wallet-like book, and 40 random long/short books (USD deltas)."""
    rng = np.random.default_rng(7)
    single = np.eye(len(ALL)) * 1e6
    hedged = np.zeros(len(ALL))
    hedged[[ALL.index("ETH"), ALL.index("BTC"), ALL.index("USDC")]] = [400_000.0, 250_000.0, -300_000.0]
    random = rng.normal(0.0, 250_000.0, size=(40, len(ALL)))
    return np.vstack([single, hedged, random])


@pytest.fixture(scope="module")
def pnl(daily: PriceHistory, books: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return portfolio_pnl(daily.simple_returns(), books)


def _exact_reference(pnl_row: npt.NDArray[np.float64], alpha_text: str) -> tuple[float, float]:
    """Sort-based reference: rational tail size k = (1 - α) n, VaR the (⌊k⌋+1)-th largest loss, R-U ES."""
    losses = sorted((-float(v) for v in pnl_row), reverse=True)
    n = len(losses)
    k = (1 - Fraction(alpha_text)) * n
    j = min(math.floor(k), n - 1)
    var = losses[j]
    es = (math.fsum(losses[:j]) + float(k - j) * var) / float(k)
    return var, es


def test_the_data_under_test_is_the_real_history(daily: PriceHistory) -> None:
    assert daily.symbols == ALL
    assert str(daily.dates[0]) == "2020-09-22"
    assert str(daily.dates[-1]) == "2025-02-11"
    assert daily.gaps().size == 0
    assert daily.prices.shape == (daily.dates.size, 14)


@pytest.mark.parametrize("n_days", [None, 1000, 250, 100])
def test_historical_equals_skfolio_on_real_data(pnl: npt.NDArray[np.float64], n_days: int | None) -> None:
    x = pnl if n_days is None else pnl[:, -n_days:]
    got = historical_var_es(x, CONFIDENCE_LEVELS)
    for i, alpha in enumerate(CONFIDENCE_LEVELS):
        ref_var = np.asarray(skm.value_at_risk(x.T, beta=alpha))
        ref_es = np.asarray(skm.cvar(x.T, beta=alpha))
        np.testing.assert_allclose(got.var[i], ref_var, rtol=RTOL, atol=0)
        np.testing.assert_allclose(got.es[i], ref_es, rtol=RTOL, atol=0)


@pytest.mark.parametrize("n_days", [None, 1000, 250, 100])
def test_historical_equals_an_exact_rank_reference_on_real_data(
    pnl: npt.NDArray[np.float64], n_days: int | None
) -> None:
    x = pnl if n_days is None else pnl[:, -n_days:]
    for alpha in CONFIDENCE_LEVELS:
        got = historical_var_es(x, alpha)
        ref = np.array([_exact_reference(row, ALPHA_TEXT[alpha]) for row in x])
        np.testing.assert_allclose(got.var, ref[:, 0], rtol=RTOL, atol=0)
        np.testing.assert_allclose(got.es, ref[:, 1], rtol=RTOL, atol=0)
        assert np.all(got.es >= got.var)


def test_historical_var_is_numpys_inverted_cdf_quantile_of_the_loss(pnl: npt.NDArray[np.float64]) -> None:
    n = pnl.shape[1]
    for alpha in CONFIDENCE_LEVELS:
        assert (alpha * n) % 1 > 1e-6  # away from a rank boundary, where float rounding of αn could decide
        ref = np.quantile(-pnl, alpha, axis=1, method="inverted_cdf")
        np.testing.assert_array_equal(historical_var_es(pnl, alpha).var, ref)


def test_hand_worked_ranks() -> None:
    losses = np.arange(1.0, 101.0)  # 1 .. 100
    pnl = -np.random.default_rng(0).permutation(losses)
    out = historical_var_es(pnl, 0.95)  # k = 5: VaR the 6th largest loss, ES the mean of the 5 largest
    assert out.var == 95.0
    assert out.es == pytest.approx((100 + 99 + 98 + 97 + 96) / 5, rel=1e-15)
    x250 = -np.arange(1.0, 251.0)  # k = 2.5: VaR the 3rd largest, ES = (250 + 249 + 0.5 · 248) / 2.5
    out = historical_var_es(x250, 0.99)
    assert out.var == 248.0
    assert out.es == pytest.approx((250 + 249 + 0.5 * 248) / 2.5, rel=1e-15)
    assert tail_size(10, 0.9) == 1.0  # (1 - 0.9) · 10 = 0.9999999999999998 in floats: snapped
    assert historical_var_es(-np.arange(1.0, 11.0), 0.9).var == 9.0  # the 2nd largest of 10


def test_shapes_and_levels(pnl: npt.NDArray[np.float64]) -> None:
    many = historical_var_es(pnl, CONFIDENCE_LEVELS)
    assert isinstance(many, VarEs)
    assert many.var.shape == many.es.shape == (3, pnl.shape[0])
    for i, alpha in enumerate(CONFIDENCE_LEVELS):
        one = historical_var_es(pnl, alpha)
        assert one.var.shape == (pnl.shape[0],)
        np.testing.assert_array_equal(one.var, many.var[i])
        np.testing.assert_allclose(one.es, many.es[i], rtol=1e-15)
    assert historical_var_es(pnl[0], 0.99).var.shape == ()
    assert np.all(np.diff(many.var, axis=0) >= 0)  # VaR grows with confidence
    assert np.all(np.diff(many.es, axis=0) >= 0)


def test_chunked_books_equal_one_block(daily: PriceHistory, books: npt.NDArray[np.float64]) -> None:
    r = daily.simple_returns()
    whole = historical_var_es(portfolio_pnl(r, books), CONFIDENCE_LEVELS)
    chunked = historical_var_es_portfolios(r, books, CONFIDENCE_LEVELS, max_elements=7 * r.shape[0])
    np.testing.assert_allclose(chunked.var, whole.var, rtol=1e-12)
    np.testing.assert_allclose(chunked.es, whole.es, rtol=1e-12)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        historical_var_es(np.array([[1.0, np.nan, 2.0]]), 0.95)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        historical_var_es(np.ones(10), 1.0)
    with pytest.raises(ValueError, match="observation"):
        historical_var_es(np.ones((3, 0)), 0.95)
    with pytest.raises(ValueError, match="positive"):
        horizon_scale(0.0)


# --- delta-normal -------------------------------------------------------------------------------------------


def _sigma_reference(e: npt.NDArray[np.float64], cov: npt.NDArray[np.float64]) -> float:
    n = len(e)
    return math.sqrt(math.fsum(float(e[i] * cov[i, j] * e[j]) for i in range(n) for j in range(n)))


@pytest.mark.parametrize("horizon", sorted(HORIZONS_DAYS))
def test_parametric_equals_scipy_norm_on_real_data(
    daily: PriceHistory, books: npt.NDArray[np.float64], horizon: str
) -> None:
    cov = ewma_covariance(daily.simple_returns())
    h = HORIZONS_DAYS[horizon]
    got = parametric_var_es(books, cov, CONFIDENCE_LEVELS, horizon_days=h)
    for p, e in enumerate(books):
        scale = _sigma_reference(e, cov) * math.sqrt(h)
        for i, alpha in enumerate(CONFIDENCE_LEVELS):
            dist = stats.norm(loc=0.0, scale=scale)
            assert got.var[i, p] == pytest.approx(dist.ppf(alpha), rel=RTOL, abs=0)
            z = stats.norm.ppf(alpha)
            assert got.es[i, p] == pytest.approx(scale * stats.norm.pdf(z) / (1 - alpha), rel=RTOL, abs=0)


def test_parametric_es_is_the_average_var_beyond_alpha(daily: PriceHistory) -> None:
    # ES_α = 1/(1-α) ∫_α^1 VaR_u du, by quadrature of scipy's normal quantile: a derivation independent of φ(z).
    cov = ewma_covariance(daily.simple_returns())
    e = np.zeros(len(ALL))
    e[ALL.index("ETH")] = 1e6
    sigma = float(portfolio_sigma(e, cov))
    for alpha in CONFIDENCE_LEVELS:
        integral, err = integrate.quad(lambda u: stats.norm.ppf(u), alpha, 1.0, epsabs=0, epsrel=1e-12, limit=200)
        assert err < 1e-9 * abs(integral)
        ref = sigma * integral / (1 - alpha)
        assert float(parametric_var_es(e, cov, alpha).es) == pytest.approx(ref, rel=1e-9)


def test_parametric_with_a_drift(daily: PriceHistory) -> None:
    r = daily.simple_returns()
    cov = ewma_covariance(r)
    mean = r.mean(axis=0)
    e = np.linspace(-2e5, 3e5, len(ALL))
    h = 7.0
    got = parametric_var_es(e, cov, 0.99, horizon_days=h, mean=mean)
    mu = float(e @ mean) * h
    scale = _sigma_reference(e, cov) * math.sqrt(h)
    assert float(got.var) == pytest.approx(-stats.norm.ppf(0.01, loc=mu, scale=scale), rel=RTOL)
    z = stats.norm.ppf(0.99)
    assert float(got.es) == pytest.approx(scale * stats.norm.pdf(z) / 0.01 - mu, rel=RTOL)


def test_normal_factors() -> None:
    z, f = normal_factors(CONFIDENCE_LEVELS)
    np.testing.assert_allclose(z, stats.norm.ppf(CONFIDENCE_LEVELS), rtol=1e-14)
    np.testing.assert_allclose(f, stats.norm.pdf(z) / (1 - np.array(CONFIDENCE_LEVELS)), rtol=1e-14)
    assert float(normal_factors(0.99)[0]) == pytest.approx(2.3263478740408408, rel=1e-15)


# --- horizons ------------------------------------------------------------------------------------------------


def test_horizon_constants_and_square_root_of_time() -> None:
    assert HORIZONS_DAYS == {"1h": 1 / 24, "1d": 1.0, "7d": 7.0}
    assert horizon_scale(7.0) == math.sqrt(7.0)
    assert horizon_scale(1 / 24) == math.sqrt(1 / 24)
    assert horizon_scale(1.0, bar_days=1 / 24) == pytest.approx(math.sqrt(24.0), rel=1e-15)


def test_every_method_scales_by_square_root_of_time(daily: PriceHistory, books: npt.NDArray[np.float64]) -> None:
    r = daily.simple_returns()
    cov = ewma_covariance(r)
    pnl = portfolio_pnl(r, books)
    base = {
        "historical": historical_var_es(pnl, CONFIDENCE_LEVELS),
        "parametric": parametric_var_es(books, cov, CONFIDENCE_LEVELS),
        "mc": monte_carlo_var_es(books, np.random.default_rng(3), 20_000, CONFIDENCE_LEVELS, covariance=cov),
    }
    for h in HORIZONS_DAYS.values():
        scaled = {
            "historical": historical_var_es(pnl, CONFIDENCE_LEVELS, horizon_days=h),
            "parametric": parametric_var_es(books, cov, CONFIDENCE_LEVELS, horizon_days=h),
            "mc": monte_carlo_var_es(
                books, np.random.default_rng(3), 20_000, CONFIDENCE_LEVELS, covariance=cov, horizon_days=h
            ),
        }
        for name, one_day in base.items():
            np.testing.assert_allclose(scaled[name].var, one_day.var * math.sqrt(h), rtol=1e-12, err_msg=name)
            np.testing.assert_allclose(scaled[name].es, one_day.es * math.sqrt(h), rtol=1e-12, err_msg=name)


def test_one_day_from_hourly_bars() -> None:
    hourly = _load("1h")
    assert hourly.bar_days == 1 / 24
    pnl = portfolio_pnl(hourly.simple_returns(), np.eye(len(ALL))[:3] * 1e6)
    per_hour = historical_var_es(pnl, 0.99, horizon_days=1 / 24, bar_days=1 / 24)
    per_day = historical_var_es(pnl, 0.99, horizon_days=1.0, bar_days=1 / 24)
    np.testing.assert_allclose(per_day.var, per_hour.var * math.sqrt(24.0), rtol=1e-12)
    np.testing.assert_allclose(per_hour.var, np.asarray(skm.value_at_risk(pnl.T, beta=0.99)), rtol=RTOL)


# --- Monte Carlo ---------------------------------------------------------------------------------------------


def test_monte_carlo_converges_to_delta_normal_within_sampling_error(
    daily: PriceHistory, books: npt.NDArray[np.float64]
) -> None:
    cov = ewma_covariance(daily.simple_returns())
    chosen = books[[ALL.index("ETH"), ALL.index("USDC"), 14, 15, 16]]
    n = 400_000
    mc = monte_carlo_var_es(chosen, np.random.default_rng(20250211), n, CONFIDENCE_LEVELS, covariance=cov)
    ref = parametric_var_es(chosen, cov, CONFIDENCE_LEVELS)
    sigma = portfolio_sigma(chosen, cov)
    for i, alpha in enumerate(CONFIDENCE_LEVELS):
        z = stats.norm.ppf(alpha)
        es1 = stats.norm.pdf(z) / (1 - alpha)
        se_var = sigma * math.sqrt(alpha * (1 - alpha) / n) / stats.norm.pdf(z)
        tail_var = 1 + z * es1 - es1**2
        se_es = sigma * math.sqrt((tail_var + alpha * (es1 - z) ** 2) / (n * (1 - alpha)))
        assert np.all(np.abs(mc.var[i] - ref.var[i]) <= 4 * se_var), (alpha, (mc.var[i] - ref.var[i]) / se_var)
        assert np.all(np.abs(mc.es[i] - ref.es[i]) <= 4 * se_es), (alpha, (mc.es[i] - ref.es[i]) / se_es)


def test_monte_carlo_is_seeded_and_independent_of_chunking(daily: PriceHistory, books: npt.NDArray[np.float64]) -> None:
    cov = ewma_covariance(daily.simple_returns())
    a = monte_carlo_var_es(books, np.random.default_rng(11), 5_000, CONFIDENCE_LEVELS, covariance=cov)
    b = monte_carlo_var_es(books, np.random.default_rng(11), 5_000, CONFIDENCE_LEVELS, covariance=cov)
    c = monte_carlo_var_es(
        books, np.random.default_rng(11), 5_000, CONFIDENCE_LEVELS, covariance=cov, max_elements=3 * 5_000
    )
    np.testing.assert_array_equal(a.var, b.var)
    np.testing.assert_array_equal(a.es, b.es)
    np.testing.assert_allclose(c.var, a.var, rtol=1e-12)
    np.testing.assert_allclose(c.es, a.es, rtol=1e-12)
    d = monte_carlo_var_es(books, np.random.default_rng(12), 5_000, CONFIDENCE_LEVELS, covariance=cov)
    assert not np.array_equal(a.var, d.var)


def test_normal_scenarios_accept_a_singular_covariance(daily: PriceHistory) -> None:
    r = daily.simple_returns()[:, [ALL.index("ETH"), ALL.index("BTC")]]
    r = np.column_stack([r, r[:, 0]])  # a duplicated column: rank 2 of 3
    cov = np.cov(r, rowvar=False)
    assert np.linalg.matrix_rank(cov) == 2
    scen = normal_scenarios(cov, 200_000, np.random.default_rng(5))
    np.testing.assert_allclose(scen[:, 0], scen[:, 2], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.cov(scen, rowvar=False), cov, rtol=0.02)


def test_bootstrap_resamples_whole_days_with_the_given_generator(
    daily: PriceHistory, books: npt.NDArray[np.float64]
) -> None:
    r = daily.simple_returns()
    got = monte_carlo_var_es(books, np.random.default_rng(9), 30_000, 0.99, method="bootstrap", returns=r)
    idx = np.random.default_rng(9).integers(0, r.shape[0], size=30_000)
    ref = historical_var_es(portfolio_pnl(r[idx], books), 0.99)
    np.testing.assert_allclose(got.var, ref.var, rtol=1e-12)
    np.testing.assert_allclose(got.es, ref.es, rtol=1e-12)
    scen = bootstrap_scenarios(r, 100, np.random.default_rng(1))
    assert all((scen[i] == r).all(axis=1).any() for i in range(100))


def test_a_revaluation_callback_sees_chunks_and_its_pnl_is_used(daily: PriceHistory) -> None:
    r = daily.simple_returns()[:, :3]
    qty = np.random.default_rng(2).normal(size=(10, 3)) * 1e5
    seen: list[int] = []

    def revalue(chunk: npt.NDArray[np.float64], scen: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        seen.append(chunk.shape[0])
        return np.asarray(chunk @ np.expm1(scen).T - 0.5 * np.abs(chunk) @ (scen**2).T)  # a convex toy book

    scen = normal_scenarios(np.cov(r, rowvar=False), 4_000, np.random.default_rng(4))
    got = scenario_var_es(qty, scen, CONFIDENCE_LEVELS, revalue=revalue, max_elements=4 * 4_000)
    assert seen == [4, 4, 2]
    ref = historical_var_es(revalue(qty, scen), CONFIDENCE_LEVELS)
    np.testing.assert_allclose(got.var, ref.var, rtol=1e-12)
    np.testing.assert_allclose(got.es, ref.es, rtol=1e-12)
    with pytest.raises(ValueError, match="revalue returned shape"):
        scenario_var_es(qty, scen, 0.99, revalue=lambda c, s: np.zeros((1, 1)))
