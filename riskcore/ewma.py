"""Exponentially weighted (RiskMetrics) variance and covariance.

The recursion, with decay ``lam`` (RiskMetrics daily: λ = 0.94) and zero mean::

    S[-1] = seed
    S[t]  = lam * S[t-1] + (1 - lam) * r[t] r[t]ᵀ        t = 0 .. T-1

``S[t]`` uses returns up to and including ``t``: it is the forecast for bar ``t + 1``. A backtest that compares
against the P&L of bar ``t`` must therefore use ``S[t - 1]`` (see :func:`riskcore.backtest.rolling_var`).

Seed (``init``): by default the zero-mean second moment of the first ``n_seed`` observations,
``mean(r[:n_seed] r[:n_seed]ᵀ)``, with ``n_seed = min(30, T)``. The first ``n_seed`` outputs therefore see the seed
window; after ``m`` further bars its weight is ``lam**m`` (``0.94**250 ≈ 2e-7``), so treat the start as burn-in.
An explicit seed (a variance per column, or an (N, N) matrix) can be passed instead.

Zero mean is the RiskMetrics convention: over one day the mean return is noise next to the volatility.
All functions are pure numpy, vectorized across columns; the loop runs over time only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_N_SEED",
    "RISKMETRICS_LAMBDA",
    "ewma_covariance",
    "ewma_covariance_series",
    "ewma_variance",
    "ewma_volatility",
]

RISKMETRICS_LAMBDA = 0.94
"""RiskMetrics (1996) decay for daily returns."""
DEFAULT_N_SEED = 30
"""Observations whose zero-mean second moment seeds the recursion when no seed is given."""

FloatArray = npt.NDArray[np.float64]


def _check_lambda(lam: float) -> None:
    if not 0.0 < lam < 1.0:
        raise ValueError(f"decay lambda must be in (0, 1), got {lam}")


def _as_returns(returns: npt.ArrayLike, min_ndim: int) -> FloatArray:
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim < min_ndim:
        raise ValueError(f"returns must have at least {min_ndim} dimension(s), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("returns are empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("returns contain NaN or inf")
    return x


def ewma_variance(
    returns: npt.ArrayLike,
    lam: float = RISKMETRICS_LAMBDA,
    init: npt.ArrayLike | None = None,
    n_seed: int = DEFAULT_N_SEED,
) -> FloatArray:
    """EWMA variance series, column by column.

    Parameters
    ----------
    returns : array_like of shape (n_observations, ...)
        Returns (or P&L) per bar; time on axis 0, any number of independent columns after it
        (e.g. ``pnl.T`` of shape (T, P) for many portfolios at once).
    lam : float, default 0.94
        Decay, in (0, 1).
    init : array_like of shape (...), optional
        Seed variance ``S[-1]`` per column (units of returns squared). Default: ``mean(r[:n_seed]**2, axis=0)``.
    n_seed : int, default 30
        Observations used by the default seed (capped at T).

    Returns
    -------
    ndarray of shape (n_observations, ...)
        ``S[t]``, the variance forecast for bar ``t + 1`` made with returns through ``t`` (returns squared).
    """
    _check_lambda(lam)
    r = _as_returns(returns, 1)
    sq = r * r
    if init is None:
        s = sq[: max(1, min(n_seed, r.shape[0]))].mean(axis=0)
    else:
        s = np.broadcast_to(np.asarray(init, dtype=np.float64), r.shape[1:]).copy()
    out = np.empty_like(r)
    one_minus = 1.0 - lam
    for t in range(r.shape[0]):
        s = lam * s + one_minus * sq[t]
        out[t] = s
    return out


def ewma_volatility(
    returns: npt.ArrayLike,
    lam: float = RISKMETRICS_LAMBDA,
    init: npt.ArrayLike | None = None,
    n_seed: int = DEFAULT_N_SEED,
) -> FloatArray:
    """EWMA volatility series: ``sqrt(ewma_variance(...))``, same shapes, units of returns per bar."""
    return np.sqrt(ewma_variance(returns, lam=lam, init=init, n_seed=n_seed))


def _seed_covariance(r: FloatArray, init: npt.ArrayLike | None, n_seed: int) -> FloatArray:
    n = r.shape[1]
    if init is None:
        head = r[: max(1, min(n_seed, r.shape[0]))]
        return np.asarray(head.T @ head / head.shape[0], dtype=np.float64)
    s = np.asarray(init, dtype=np.float64)
    if s.shape != (n, n):
        raise ValueError(f"init must have shape ({n}, {n}), got {s.shape}")
    return s.copy()


def ewma_covariance_series(
    returns: npt.ArrayLike,
    lam: float = RISKMETRICS_LAMBDA,
    init: npt.ArrayLike | None = None,
    n_seed: int = DEFAULT_N_SEED,
) -> FloatArray:
    """EWMA covariance matrix after every bar.

    Parameters
    ----------
    returns : array_like of shape (n_observations, n_assets)
    lam : float, default 0.94
    init : array_like of shape (n_assets, n_assets), optional
        Seed ``S[-1]``. Default: ``r[:n_seed]ᵀ r[:n_seed] / n_seed``.
    n_seed : int, default 30

    Returns
    -------
    ndarray of shape (n_observations, n_assets, n_assets)
        ``S[t]``, the covariance forecast for bar ``t + 1`` (returns squared). Memory is T·N²·8 bytes; use
        :func:`ewma_covariance` when only the last matrix is needed.
    """
    _check_lambda(lam)
    r = _as_returns(returns, 2)
    if r.ndim != 2:
        raise ValueError(f"returns must have shape (T, N), got {r.shape}")
    s = _seed_covariance(r, init, n_seed)
    out = np.empty((r.shape[0], r.shape[1], r.shape[1]), dtype=np.float64)
    one_minus = 1.0 - lam
    for t in range(r.shape[0]):
        s = lam * s + one_minus * np.outer(r[t], r[t])
        out[t] = s
    return out


def ewma_covariance(
    returns: npt.ArrayLike,
    lam: float = RISKMETRICS_LAMBDA,
    init: npt.ArrayLike | None = None,
    n_seed: int = DEFAULT_N_SEED,
) -> FloatArray:
    """The last EWMA covariance matrix, ``S[T-1]``, in closed form (no loop).

    ``S[T-1] = lam**T · seed + (1 - lam) Σ_t lam**(T-1-t) r[t] r[t]ᵀ`` — the same number as the last element of
    :func:`ewma_covariance_series` (up to summation order).

    Parameters
    ----------
    returns : array_like of shape (n_observations, n_assets)
    lam, init, n_seed
        As in :func:`ewma_covariance_series`.

    Returns
    -------
    ndarray of shape (n_assets, n_assets)
        Covariance forecast for the next bar (returns squared), symmetric.
    """
    _check_lambda(lam)
    r = _as_returns(returns, 2)
    if r.ndim != 2:
        raise ValueError(f"returns must have shape (T, N), got {r.shape}")
    t_len = r.shape[0]
    seed = _seed_covariance(r, init, n_seed)
    weights = (1.0 - lam) * lam ** np.arange(t_len - 1, -1, -1, dtype=np.float64)
    cov = (r * weights[:, None]).T @ r + lam**t_len * seed
    return np.asarray(0.5 * (cov + cov.T), dtype=np.float64)
