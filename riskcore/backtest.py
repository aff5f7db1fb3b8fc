"""Rolling VaR backtest of linear books, with Kupiec and Christoffersen coverage tests.

The book is a vector of USD deltas per asset, rebalanced to constant exposure each bar, so its P&L on bar ``t``
is ``e · r[t]`` with ``r`` simple returns. At every bar ``t ≥ window`` two one-bar VaR forecasts use only the
bars before ``t``:

* historical: :func:`riskcore.var.historical_var_es` over the P&L of the current book on bars
  ``t - window .. t - 1`` (convention of :mod:`riskcore.var`);
* EWMA delta-normal: ``z_alpha σ[t]`` with ``σ[t]² = e S[t-1] eᵀ``, ``S`` the EWMA covariance of
  :mod:`riskcore.ewma`. For a fixed book this equals the EWMA variance of the book's own P&L series, which is
  what is computed (one recursion per book instead of one per asset pair).

An **exceedance** is a loss strictly greater than the VaR: ``pnl[t] < -VaR[t]``.

Coverage tests (``p = 1 - alpha``, ``n`` days, ``x`` exceedances, ``0 · log 0 = 0``):

* Kupiec (1995) proportion of failures:
  ``LR_pof = -2 [ (n - x) log(1 - p) + x log p - (n - x) log(1 - x/n) - x log(x/n) ]`` ~ χ²(1).
* Christoffersen (1998) independence, from the transition counts ``n_ij`` (day ``t-1`` in state ``i``, day ``t``
  in state ``j``, 1 = exceedance), ``π01 = n01/(n00 + n01)``, ``π11 = n11/(n10 + n11)``,
  ``π = (n01 + n11)/(n00 + n01 + n10 + n11)``:
  ``LR_ind = -2 [ (n00 + n10) log(1 - π) + (n01 + n11) log π
  - n00 log(1 - π01) - n01 log π01 - n10 log(1 - π11) - n11 log π11 ]`` ~ χ²(1).
* Conditional coverage: ``LR_cc = LR_pof + LR_ind`` ~ χ²(2) (POF on all ``n`` days, as usually applied).

A sub-sample (in-sample, out-of-sample) is a boolean mask over days; transitions are counted only between
consecutive days that are both in the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import chdtrc, xlogy

from riskcore.ewma import DEFAULT_N_SEED, RISKMETRICS_LAMBDA, ewma_variance
from riskcore.var import historical_var_es, normal_factors, portfolio_pnl

__all__ = [
    "CoverageTest",
    "RollingVar",
    "calibrate_lambda",
    "christoffersen_independence",
    "coverage_test",
    "kupiec_pof",
    "rolling_var",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class RollingVar:
    """One-bar VaR / ES forecasts and the realized P&L on the evaluated bars.

    Every array has shape (n_portfolios, n_eval), USD, losses positive for VaR and ES; ``index`` (n_eval,) gives
    the row of ``returns`` each column belongs to (``window .. T - 1``).
    """

    alpha: float
    window: int
    lam: float
    index: IntArray
    pnl: FloatArray
    var_historical: FloatArray
    es_historical: FloatArray
    var_ewma: FloatArray
    es_ewma: FloatArray

    @property
    def exceed_historical(self) -> BoolArray:
        """(n_portfolios, n_eval): ``pnl < -VaR_historical``."""
        return np.asarray(self.pnl < -self.var_historical)

    @property
    def exceed_ewma(self) -> BoolArray:
        """(n_portfolios, n_eval): ``pnl < -VaR_ewma``."""
        return np.asarray(self.pnl < -self.var_ewma)


def rolling_var(
    returns: npt.ArrayLike,
    exposures: npt.ArrayLike,
    alpha: float = 0.99,
    window: int = 250,
    lam: float = RISKMETRICS_LAMBDA,
    n_seed: int = DEFAULT_N_SEED,
) -> RollingVar:
    """Rolling one-bar historical and EWMA-parametric VaR / ES of linear books, out of sample at every bar.

    Parameters
    ----------
    returns : array_like of shape (n_observations, n_assets)
        Simple returns per bar.
    exposures : array_like of shape (n_portfolios, n_assets) or (n_assets,)
        USD delta per asset; constant through the backtest.
    alpha : float, default 0.99
    window : int, default 250
        Historical look-back in bars; also the first evaluated bar for both methods.
    lam : float, default 0.94
        EWMA decay. The recursion is seeded with the first ``n_seed`` bars of P&L (before ``window``).
    n_seed : int, default 30

    Returns
    -------
    RollingVar
        Arrays of shape (n_portfolios, n_observations - window).
    """
    r = np.asarray(returns, dtype=np.float64)
    e = np.atleast_2d(np.asarray(exposures, dtype=np.float64))
    if not 0 < window < r.shape[0]:
        raise ValueError(f"window must be in (0, {r.shape[0]}), got {window}")
    if n_seed > window:
        raise ValueError(f"the EWMA seed ({n_seed} bars) must lie inside the first window ({window} bars)")
    pnl = portfolio_pnl(r, e)  # (P, T)
    windows = np.lib.stride_tricks.sliding_window_view(pnl, window, axis=-1)[:, :-1]  # (P, T - window, window)
    hist = historical_var_es(windows, alpha)
    variance = ewma_variance(pnl.T, lam=lam, n_seed=n_seed).T  # (P, T): S[t] uses bars through t
    sigma = np.sqrt(variance[:, window - 1 : -1])  # forecast for bar t uses S[t - 1]
    z, es_factor = normal_factors(alpha)
    return RollingVar(
        alpha=alpha,
        window=window,
        lam=lam,
        index=np.arange(window, r.shape[0], dtype=np.int64),
        pnl=np.ascontiguousarray(pnl[:, window:]),
        var_historical=hist.var,
        es_historical=hist.es,
        var_ewma=sigma * float(z),
        es_ewma=sigma * float(es_factor),
    )


def kupiec_pof(
    n_exceed: npt.ArrayLike, n_obs: npt.ArrayLike, alpha: float | npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Kupiec proportion-of-failures likelihood ratio and its χ²(1) p-value.

    Parameters
    ----------
    n_exceed : array_like of int, shape (...)
        Exceedance counts ``x``.
    n_obs : array_like of int, shape (...)
        Days ``n`` (> 0).
    alpha : float or array_like
        VaR confidence; the expected exceedance probability is ``1 - alpha``.

    Returns
    -------
    (lr, p_value) : ndarrays of shape (...)
    """
    x = np.asarray(n_exceed, dtype=np.float64)
    n = np.asarray(n_obs, dtype=np.float64)
    p = 1.0 - np.asarray(alpha, dtype=np.float64)
    if np.any(n <= 0) or np.any((x < 0) | (x > n)):
        raise ValueError("need 0 <= n_exceed <= n_obs and n_obs > 0")
    rate = x / n
    log_null = xlogy(n - x, 1.0 - p) + xlogy(x, p)
    log_alt = xlogy(n - x, 1.0 - rate) + xlogy(x, rate)
    lr = np.maximum(-2.0 * (log_null - log_alt), 0.0)
    return np.asarray(lr, dtype=np.float64), np.asarray(chdtrc(1.0, lr), dtype=np.float64)


def _transitions(exceed: BoolArray, mask: BoolArray | None) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    prev, cur = exceed[..., :-1], exceed[..., 1:]
    pair = np.ones(prev.shape[-1], dtype=bool) if mask is None else mask[:-1] & mask[1:]
    n00 = np.sum(~prev & ~cur & pair, axis=-1)
    n01 = np.sum(~prev & cur & pair, axis=-1)
    n10 = np.sum(prev & ~cur & pair, axis=-1)
    n11 = np.sum(prev & cur & pair, axis=-1)
    return n00, n01, n10, n11


def christoffersen_independence(
    exceed: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Christoffersen's first-order Markov independence test of an exceedance sequence.

    Parameters
    ----------
    exceed : array_like of bool, shape (..., n_days)
        Exceedance indicator per day.
    mask : array_like of bool, shape (n_days,), optional
        Days in the sample; a transition counts when both of its days are in it.

    Returns
    -------
    (lr, p_value, counts)
        ``lr`` and ``p_value`` of shape (...); ``counts`` of shape (..., 4): ``n00, n01, n10, n11``.
    """
    ind = np.asarray(exceed, dtype=bool)
    m = None if mask is None else np.asarray(mask, dtype=bool)
    n00, n01, n10, n11 = (c.astype(np.float64) for c in _transitions(ind, m))
    with np.errstate(divide="ignore", invalid="ignore"):
        pi01 = np.where(n00 + n01 > 0, n01 / (n00 + n01), 0.0)
        pi11 = np.where(n10 + n11 > 0, n11 / (n10 + n11), 0.0)
        total = n00 + n01 + n10 + n11
        pi = np.where(total > 0, (n01 + n11) / total, 0.0)
    log_null = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    log_alt = xlogy(n00, 1.0 - pi01) + xlogy(n01, pi01) + xlogy(n10, 1.0 - pi11) + xlogy(n11, pi11)
    lr = np.maximum(-2.0 * (log_null - log_alt), 0.0)
    counts = np.stack([n00, n01, n10, n11], axis=-1).astype(np.int64)
    return np.asarray(lr, dtype=np.float64), np.asarray(chdtrc(1.0, lr), dtype=np.float64), counts


@dataclass(frozen=True, slots=True)
class CoverageTest:
    """Coverage statistics of exceedance sequences; every field has shape (...) of the input's leading axes."""

    alpha: float
    n_obs: IntArray
    n_exceed: IntArray
    expected: FloatArray
    """``(1 - alpha) n_obs``."""
    lr_pof: FloatArray
    p_pof: FloatArray
    lr_ind: FloatArray
    p_ind: FloatArray
    transitions: IntArray
    """(..., 4): ``n00, n01, n10, n11``."""
    lr_cc: FloatArray
    p_cc: FloatArray


def coverage_test(exceed: npt.ArrayLike, alpha: float, mask: npt.ArrayLike | None = None) -> CoverageTest:
    """Kupiec, Christoffersen and conditional-coverage tests of exceedance sequences.

    Parameters
    ----------
    exceed : array_like of bool, shape (..., n_days)
    alpha : float
        VaR confidence level.
    mask : array_like of bool, shape (n_days,), optional
        The sub-sample (e.g. in-sample days); default all days.

    Returns
    -------
    CoverageTest
    """
    ind = np.asarray(exceed, dtype=bool)
    m = np.ones(ind.shape[-1], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != ind.shape[-1:]:
        raise ValueError(f"mask must have shape ({ind.shape[-1]},), got {m.shape}")
    n_obs = np.broadcast_to(np.int64(m.sum()), ind.shape[:-1]).astype(np.int64)
    n_exceed = np.sum(ind & m, axis=-1).astype(np.int64)
    lr_pof, p_pof = kupiec_pof(n_exceed, n_obs, alpha)
    lr_ind, p_ind, counts = christoffersen_independence(ind, m)
    lr_cc = lr_pof + lr_ind
    return CoverageTest(
        alpha=alpha,
        n_obs=n_obs,
        n_exceed=n_exceed,
        expected=np.asarray((1.0 - alpha) * n_obs, dtype=np.float64),
        lr_pof=lr_pof,
        p_pof=p_pof,
        lr_ind=lr_ind,
        p_ind=p_ind,
        transitions=counts,
        lr_cc=np.asarray(lr_cc, dtype=np.float64),
        p_cc=np.asarray(chdtrc(2.0, lr_cc), dtype=np.float64),
    )


def calibrate_lambda(
    returns: npt.ArrayLike,
    exposures: npt.ArrayLike,
    in_sample: npt.ArrayLike,
    lambdas: Sequence[float] = (0.90, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99),
    alpha: float = 0.99,
    window: int = 250,
) -> tuple[float, FloatArray]:
    """Pick the EWMA decay whose in-sample conditional-coverage statistic, summed over the books, is smallest.

    Parameters
    ----------
    returns : array_like of shape (n_observations, n_assets)
    exposures : array_like of shape (n_portfolios, n_assets)
    in_sample : array_like of bool, shape (n_observations,)
        Bars that may be used for calibration; only evaluated bars inside it count.
    lambdas : sequence of float
    alpha : float, default 0.99
    window : int, default 250

    Returns
    -------
    (lam, lr_cc)
        The chosen decay and the summed in-sample ``LR_cc`` per candidate, shape (n_lambdas,).
    """
    mask = np.asarray(in_sample, dtype=bool)
    scores = np.empty(len(lambdas), dtype=np.float64)
    for i, lam in enumerate(lambdas):
        rv = rolling_var(returns, exposures, alpha=alpha, window=window, lam=lam)
        scores[i] = float(np.sum(coverage_test(rv.exceed_ewma, alpha, mask[rv.index]).lr_cc))
    return float(lambdas[int(np.argmin(scores))]), scores
