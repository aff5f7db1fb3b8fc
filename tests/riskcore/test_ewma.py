"""EWMA (RiskMetrics) variance and covariance on the real price history against plain-Python loops."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from aggregator.marketdata import MarketDataNotFoundError, load_prices
from riskcore.ewma import (
    DEFAULT_N_SEED,
    RISKMETRICS_LAMBDA,
    ewma_covariance,
    ewma_covariance_series,
    ewma_variance,
    ewma_volatility,
)

SYMBOLS = ("BTC", "ETH", "USDC", "USDT", "SOL", "DOGE")
RTOL = 1e-10


@pytest.fixture(scope="module")
def returns() -> npt.NDArray[np.float64]:
    try:
        return load_prices(SYMBOLS).simple_returns()
    except MarketDataNotFoundError as exc:
        pytest.skip(f"real market data not available: {exc}")


def _loop_covariance(r: list[list[float]], lam: float, seed: list[list[float]]) -> list[list[list[float]]]:
    """The recursion written out element by element in Python floats."""
    n = len(seed)
    s = [row[:] for row in seed]
    out = []
    for obs in r:
        s = [[lam * s[i][j] + (1 - lam) * obs[i] * obs[j] for j in range(n)] for i in range(n)]
        out.append([row[:] for row in s])
    return out


def _loop_seed(r: list[list[float]], m: int) -> list[list[float]]:
    n = len(r[0])
    return [[sum(r[t][i] * r[t][j] for t in range(m)) / m for j in range(n)] for i in range(n)]


def test_riskmetrics_constants() -> None:
    assert RISKMETRICS_LAMBDA == 0.94
    assert DEFAULT_N_SEED == 30


def test_covariance_series_equals_the_loop_on_real_data(returns: npt.NDArray[np.float64]) -> None:
    rows = returns.tolist()
    ref = np.array(_loop_covariance(rows, 0.94, _loop_seed(rows, 30)))
    got = ewma_covariance_series(returns)
    assert got.shape == (returns.shape[0], len(SYMBOLS), len(SYMBOLS))
    # relative 1e-10 per entry, measured against each matrix's largest entry (small cross terms cancel)
    scale = np.abs(ref).max(axis=(1, 2))[:, None, None]
    assert np.all(np.abs(got - ref) <= RTOL * (np.abs(ref) + scale))


def test_variance_equals_the_loop_and_the_covariance_diagonal(returns: npt.NDArray[np.float64]) -> None:
    for lam in (0.94, 0.97):
        var = ewma_variance(returns, lam=lam)
        for j in range(returns.shape[1]):
            col = returns[:, j].tolist()
            s = sum(x * x for x in col[:30]) / 30
            ref = []
            for x in col:
                s = lam * s + (1 - lam) * x * x
                ref.append(s)
            np.testing.assert_allclose(var[:, j], ref, rtol=RTOL, atol=0)
        diag = np.diagonal(ewma_covariance_series(returns, lam=lam), axis1=1, axis2=2)
        np.testing.assert_allclose(var, diag, rtol=RTOL, atol=0)
    np.testing.assert_allclose(ewma_volatility(returns), np.sqrt(ewma_variance(returns)), rtol=0, atol=0)


def test_closed_form_equals_the_last_step(returns: npt.NDArray[np.float64]) -> None:
    for lam in (0.90, 0.94, 0.99):
        last = ewma_covariance_series(returns, lam=lam)[-1]
        np.testing.assert_allclose(ewma_covariance(returns, lam=lam), last, rtol=RTOL, atol=RTOL * np.abs(last).max())
    short = returns[:10]  # the seed's weight lam**T still matters here
    np.testing.assert_allclose(ewma_covariance(short), ewma_covariance_series(short)[-1], rtol=RTOL)


def test_a_book_variance_is_the_ewma_of_its_pnl(returns: npt.NDArray[np.float64]) -> None:
    """e S[t] eᵀ == EWMA variance of the P&L series e · r[t]: what the backtest relies on."""
    e = np.array([250_000.0, 400_000.0, -300_000.0, 0.0, 50_000.0, -20_000.0])
    series = ewma_covariance_series(returns)
    via_cov = np.einsum("i,tij,j->t", e, series, e)
    via_pnl = ewma_variance(returns @ e)
    np.testing.assert_allclose(via_pnl, via_cov, rtol=RTOL)


def test_explicit_seed_and_many_columns_at_once(returns: npt.NDArray[np.float64]) -> None:
    seed = np.full(returns.shape[1], 1e-4)
    got = ewma_variance(returns, init=seed)
    assert got[0] == pytest.approx(0.94 * 1e-4 + 0.06 * returns[0] ** 2, rel=1e-15)
    cov_seed = np.diag(seed)
    np.testing.assert_allclose(
        np.diagonal(ewma_covariance_series(returns, init=cov_seed), axis1=1, axis2=2), got, rtol=RTOL
    )
    # P&L of many books as columns (T, P) in one call equals one book at a time
    pnl = returns @ np.random.default_rng(0).normal(size=(returns.shape[1], 7))
    together = ewma_variance(pnl)
    for p in range(7):
        np.testing.assert_allclose(together[:, p], ewma_variance(pnl[:, p]), rtol=1e-14)


def test_bad_inputs_are_refused(returns: npt.NDArray[np.float64]) -> None:
    with pytest.raises(ValueError, match="lambda"):
        ewma_variance(returns, lam=1.0)
    with pytest.raises(ValueError, match="NaN"):
        ewma_variance(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="shape"):
        ewma_covariance_series(returns, init=np.eye(2))
    with pytest.raises(ValueError, match="empty"):
        ewma_covariance(np.empty((0, 3)))
