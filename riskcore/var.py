"""Value at risk and expected shortfall of many portfolios at once: historical, delta-normal, Monte Carlo.

Conventions (all three methods)
-------------------------------
* **Losses are positive.** A portfolio's P&L ``x`` (USD, gains positive) has loss ``L = -x``; VaR and ES are
  reported in the units of the P&L (USD), and a VaR of 0 or less means the tail is a gain.
* **Confidence** ``alpha`` in (0, 1): 0.95, 0.99, 0.999 (:data:`CONFIDENCE_LEVELS`).
* **Historical quantile.** With ``n`` equally weighted observations and tail size ``k = (1 - alpha) n``
  (snapped to the nearest integer when within ``4 · eps · n`` of it, to absorb the rounding of ``1 - alpha``),
  let ``j = min(floor(k), n - 1)`` and let ``L[1] ≥ L[2] ≥ … ≥ L[n]`` be the losses sorted in decreasing order:

  - ``VaR_alpha = L[j + 1]``, the (j+1)-th largest loss. This is the lower alpha-quantile of the empirical loss
    distribution, ``inf{l : F_n(l) ≥ alpha}`` (numpy's ``method="inverted_cdf"`` on the losses), e.g. the 6th
    largest of 100 losses at 95%, the 3rd largest of 250 at 99%.
  - ``ES_alpha = (L[1] + … + L[j] + (k - j) · L[j + 1]) / k``: the mean of the worst ``1 - alpha`` of the
    probability mass (Rockafellar & Uryasev 2002), which counts the VaR observation with the fractional weight
    that the tail needs. When ``k`` is an integer it is the plain mean of the ``k`` largest losses; it is always
    ``≥ VaR``. This is skfolio's ``value_at_risk`` / ``cvar`` convention.

* **Delta-normal.** P&L ``x = e · r`` with ``r ~ N(mu, Σ)`` per bar: ``σ_P = sqrt(e Σ eᵀ)``,
  ``VaR = z σ_P sqrt(h) - (e · mu) h`` and ``ES = σ_P sqrt(h) φ(z) / (1 - alpha) - (e · mu) h`` with
  ``z = Φ⁻¹(alpha)``; ``mu`` defaults to zero (over hours to days the drift is noise next to the volatility).
* **Horizon (square-root of time).** Risk measured on bars of ``bar_days`` days is carried to a horizon of
  ``horizon_days`` by the factor ``sqrt(horizon_days / bar_days)`` (:func:`horizon_scale`): i.i.d. zero-mean
  returns whose variance grows linearly in time. 1 h = 1/24 d, 1 d, 7 d (:data:`HORIZONS_DAYS`). From daily data
  the 1 h figure is the daily one times ``sqrt(1/24)``; from hourly data the 1 d figure is the hourly one times
  ``sqrt(24)``. It ignores autocorrelation and volatility clustering within the horizon and, for historical and
  bootstrap scenarios, the fattening or thinning of tails under aggregation.
* **P&L of a linear book.** ``pnl = exposures @ returns.T``: USD deltas times simple returns is the exact
  P&L of positions rebalanced to constant USD exposure each bar; with log returns it is the delta approximation.

Shapes: returns are (n_observations, n_assets) as in skfolio; P&L of many portfolios is (n_portfolios,
n_observations), time last so that the partition runs over contiguous memory. A sequence of confidence levels
adds a leading axis to every result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "CACHE_ELEMENTS",
    "CONFIDENCE_LEVELS",
    "DEFAULT_MAX_ELEMENTS",
    "HORIZONS_DAYS",
    "Revalue",
    "VarEs",
    "bootstrap_scenarios",
    "historical_var_es",
    "historical_var_es_portfolios",
    "horizon_scale",
    "monte_carlo_var_es",
    "normal_factors",
    "normal_scenarios",
    "parametric_var_es",
    "portfolio_pnl",
    "portfolio_sigma",
    "scenario_var_es",
    "tail_size",
]

FloatArray = npt.NDArray[np.float64]

CONFIDENCE_LEVELS: tuple[float, ...] = (0.95, 0.99, 0.999)
HORIZONS_DAYS: dict[str, float] = {"1h": 1.0 / 24.0, "1d": 1.0, "7d": 7.0}
DEFAULT_MAX_ELEMENTS = 1 << 23
"""Largest P&L block (portfolios × scenarios) held at once by the chunked functions: 64 MiB of float64."""
CACHE_ELEMENTS = 1 << 18
"""P&L block of :func:`historical_var_es_portfolios`: 2 MiB of float64, about one core's L2 cache."""

Revalue = Callable[[FloatArray, FloatArray], FloatArray]
"""``revalue(positions_chunk (p, ...), scenario_returns (S, N)) -> pnl (p, S)`` in USD."""


class VarEs(NamedTuple):
    """VaR and ES, both losses in the units of the P&L (USD), same shape."""

    var: FloatArray
    es: FloatArray


def horizon_scale(horizon_days: float, bar_days: float = 1.0) -> float:
    """Square-root-of-time factor ``sqrt(horizon_days / bar_days)`` from one bar to the horizon.

    Parameters
    ----------
    horizon_days : float
        Risk horizon in days (1/24 for one hour).
    bar_days : float, default 1.0
        Length of one observation in days (1/24 for hourly bars).
    """
    if not (horizon_days > 0 and bar_days > 0):
        raise ValueError(f"horizon and bar length must be positive, got {horizon_days}, {bar_days}")
    return math.sqrt(horizon_days / bar_days)


def _alphas(alpha: float | Sequence[float] | npt.NDArray[np.float64]) -> tuple[FloatArray, bool]:
    a = np.asarray(alpha, dtype=np.float64)
    if a.ndim > 1:
        raise ValueError(f"alpha must be a number or a 1-d sequence, got shape {a.shape}")
    if not np.all((a > 0.0) & (a < 1.0)):
        raise ValueError(f"confidence levels must be in (0, 1), got {alpha}")
    return np.atleast_1d(a), a.ndim == 0


def tail_size(n_observations: int, alpha: float) -> float:
    """The tail size ``k = (1 - alpha) n`` of the historical convention, snapped to an integer within rounding.

    Parameters
    ----------
    n_observations : int
    alpha : float
        Confidence level in (0, 1).

    Returns
    -------
    float
        ``k``; VaR is the ``(min(floor(k), n - 1) + 1)``-th largest loss.
    """
    k = (1.0 - alpha) * n_observations
    nearest = round(k)
    if nearest > 0 and abs(k - nearest) <= 4.0 * np.finfo(np.float64).eps * max(n_observations, 1):
        k = float(nearest)
    return k


def historical_var_es(
    pnl: npt.ArrayLike,
    alpha: float | Sequence[float] | npt.NDArray[np.float64] = 0.99,
    horizon_days: float = 1.0,
    bar_days: float = 1.0,
) -> VarEs:
    """Historical VaR and ES of many P&L series at once (a selection of each row's tail, then a sort of it only).

    Parameters
    ----------
    pnl : array_like of shape (..., n_observations)
        P&L per bar, USD, gains positive; time on the last axis, e.g. (n_portfolios, T). Must be finite.
    alpha : float or sequence of float, default 0.99
        Confidence level(s) in (0, 1).
    horizon_days, bar_days : float, default 1.0
        Square-root-of-time scaling from bars of ``bar_days`` to ``horizon_days`` (see module docstring).

    Returns
    -------
    VarEs
        Arrays of shape (...) for a single ``alpha``, (n_alphas, ...) for a sequence; positive = loss, USD.
    """
    x = np.asarray(pnl, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"pnl needs at least one observation on its last axis, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("pnl contains NaN or inf")
    alphas, scalar = _alphas(alpha)
    levels = _levels(x.shape[-1], alphas)
    var = np.empty((len(alphas), *x.shape[:-1]), dtype=np.float64)
    es = np.empty_like(var)
    rows = x.reshape(-1, x.shape[-1])
    flat = (len(alphas), rows.shape[0])
    _tail_measures(rows, levels, horizon_scale(horizon_days, bar_days), var.reshape(flat), es.reshape(flat))
    if scalar:
        return VarEs(var[0], es[0])
    return VarEs(var, es)


def _levels(n: int, alphas: FloatArray) -> list[tuple[float, int]]:
    """``(k, j)`` per confidence level for ``n`` observations: tail size and index of the VaR in the sorted tail."""
    ks = [tail_size(n, float(a)) for a in alphas]
    return [(k, min(math.floor(k), n - 1)) for k in ks]


def _smallest_sorted(x: FloatArray, m: int) -> FloatArray:
    """The ``m`` smallest values of every row of ``x`` (p, n), ascending: a new C-contiguous (p, m) array.

    Exact, and the same array as ``np.sort(np.partition(x, m - 1, axis=1)[:, :m], axis=1)``, but a full
    ``np.partition`` costs ~9 ns per value. Instead: take the minimum of each of ``g ≥ m`` disjoint groups of a
    row (strided, so the reduction is elementwise over contiguous memory); the m-th smallest of these ``g``
    minima is a bound ``b`` with at least ``m`` values of the row ``≤ b``, so every one of the row's ``m``
    smallest values (ties included) is ``≤ b``. Only the values ``≤ b`` (~2.5 m per row for ``g = 2.5 m``) are
    gathered, padded with ``+inf``, partitioned and sorted. Rows with more than ``4 m`` values ``≤ b`` (ties: a
    constant P&L) take the plain partition. Rows must be free of NaN.
    """
    p, n = x.shape
    groups = min(5 * m // 2, n // 4)
    if p == 0 or groups < m:
        return np.sort(np.partition(x, m - 1, axis=1)[:, :m], axis=1)
    size = n // groups
    minima = np.minimum.reduce(x[:, : groups * size].reshape(p, size, groups), axis=1)
    bound = np.partition(minima, m - 1, axis=1)[:, m - 1 : m]
    keep = x <= bound
    counts = np.count_nonzero(keep, axis=1)
    width = int(counts.max())
    if width > 4 * m:
        # Rows with many ties at the bound (a flat P&L, an empty book) would widen the gather for the whole
        # block: they take the plain partition instead.
        heavy = counts > 4 * m
        out = np.empty((p, m), dtype=np.float64)
        out[heavy] = np.sort(np.partition(x[heavy], m - 1, axis=1)[:, :m], axis=1)
        light = ~heavy
        if light.any():
            keep[heavy] = False
            out[light] = _gather_smallest(x[keep], counts[light], m)
        return out
    return _gather_smallest(x[keep], counts, m)


def _gather_smallest(values: FloatArray, counts: npt.NDArray[np.intp], m: int) -> FloatArray:
    """Sorted ``m`` smallest of each row's candidates: ``values`` holds ``counts[i]`` values of row ``i`` in turn."""
    width = int(counts.max())
    candidates = np.full((counts.size, width), np.inf)
    candidates[np.arange(width) < counts[:, None]] = values  # row-major order on both sides
    return np.sort(np.partition(candidates, m - 1, axis=1)[:, :m], axis=1)


def _tail_measures(
    x: FloatArray, levels: Sequence[tuple[float, int]], scale: float, var: FloatArray, es: FloatArray
) -> None:
    """Historical VaR and ES of the rows of ``x`` (p, n) (finite) into ``var`` and ``es`` (n_levels, p)."""
    # The j_max + 1 smallest P&L, sorted, give every level's VaR and the observations beyond it.
    tail = _smallest_sorted(x, max(j for _, j in levels) + 1)
    for i, (k, j) in enumerate(levels):
        at_var = tail[:, j]
        # ES = VaR + (sum of the j larger losses' excess over VaR) / k: the same number as
        # (L[1] + … + L[j] + (k - j) L[j+1]) / k, written so that ES >= VaR holds in floating point too.
        excess = (tail[:, :j] - at_var[:, None]).sum(axis=-1)
        var[i] = -at_var * scale
        es[i] = -(at_var + excess / k) * scale


def portfolio_pnl(returns: npt.ArrayLike, exposures: npt.ArrayLike) -> FloatArray:
    """P&L of linear books: ``exposures @ returns.T``.

    Parameters
    ----------
    returns : array_like of shape (n_observations, n_assets)
        Simple returns per bar (fractions).
    exposures : array_like of shape (n_portfolios, n_assets) or (n_assets,)
        USD delta per asset (positive long, negative short).

    Returns
    -------
    ndarray of shape (n_portfolios, n_observations) or (n_observations,)
        P&L per bar, USD.
    """
    r = np.asarray(returns, dtype=np.float64)
    e = np.asarray(exposures, dtype=np.float64)
    if r.ndim != 2 or e.shape[-1] != r.shape[1]:
        raise ValueError(f"returns (T, N) and exposures (..., N) do not match: {r.shape}, {e.shape}")
    return np.asarray(e @ r.T, dtype=np.float64)


def _chunk_rows(n_rows: int, row_len: int, max_elements: int) -> int:
    return max(1, min(n_rows, max_elements // max(row_len, 1)))


def historical_var_es_portfolios(
    returns: npt.ArrayLike,
    exposures: npt.ArrayLike,
    alpha: float | Sequence[float] | npt.NDArray[np.float64] = 0.99,
    horizon_days: float = 1.0,
    bar_days: float = 1.0,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> VarEs:
    """Historical VaR and ES of many linear books over one return history, in chunks of portfolios.

    Parameters
    ----------
    returns : array_like of shape (n_observations, n_assets)
        Simple returns per bar.
    exposures : array_like of shape (n_portfolios, n_assets)
        USD delta per asset.
    alpha, horizon_days, bar_days
        As in :func:`historical_var_es`.
    max_elements : int
        Bound on the P&L block held at once (portfolios × observations).

    Returns
    -------
    VarEs
        Arrays of shape (n_portfolios,) or (n_alphas, n_portfolios), USD.
    """
    r = np.asarray(returns, dtype=np.float64)
    e = np.atleast_2d(np.asarray(exposures, dtype=np.float64))
    if r.ndim != 2 or e.ndim != 2 or e.shape[-1] != r.shape[1]:
        raise ValueError(f"returns (T, N) and exposures (..., N) do not match: {r.shape}, {e.shape}")
    n_obs = r.shape[0]
    if n_obs == 0:
        raise ValueError(f"pnl needs at least one observation on its last axis, got shape {(e.shape[0], 0)}")
    alphas, scalar = _alphas(alpha)
    levels = _levels(n_obs, alphas)
    scale = horizon_scale(horizon_days, bar_days)
    n_port = e.shape[0]
    var = np.empty((len(alphas), n_port), dtype=np.float64)
    es = np.empty_like(var)
    # Blocks of at most CACHE_ELEMENTS P&L values (and max_elements): the matmul writes a block that the
    # selection then reads several times while it is still in cache.
    step = min(_chunk_rows(n_port, n_obs, max_elements), _chunk_rows(n_port, n_obs, CACHE_ELEMENTS))
    block = np.empty((step, n_obs), dtype=np.float64)
    r_t = r.T
    for s in range(0, n_port, step):
        pnl = block[: min(step, n_port - s)]
        np.matmul(e[s : s + step], r_t, out=pnl)
        if not np.all(np.isfinite(pnl)):
            raise ValueError("pnl contains NaN or inf")
        _tail_measures(pnl, levels, scale, var[:, s : s + step], es[:, s : s + step])
    if scalar:
        return VarEs(var[0], es[0])
    return VarEs(var, es)


def portfolio_sigma(exposures: npt.ArrayLike, covariance: npt.ArrayLike) -> FloatArray:
    """Standard deviation of linear books' P&L per bar: ``sqrt(e Σ eᵀ)`` row by row.

    Parameters
    ----------
    exposures : array_like of shape (n_portfolios, n_assets) or (n_assets,)
        USD delta per asset.
    covariance : array_like of shape (n_assets, n_assets)
        Covariance of returns per bar (fractions squared).

    Returns
    -------
    ndarray of shape (n_portfolios,) or ()
        USD per bar.
    """
    e = np.asarray(exposures, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or e.shape[-1] != cov.shape[0]:
        raise ValueError(f"exposures (..., N) and covariance (N, N) do not match: {e.shape}, {cov.shape}")
    variance = np.einsum("...i,ij,...j->...", e, cov, e)
    return np.asarray(np.sqrt(np.maximum(variance, 0.0)), dtype=np.float64)


def normal_factors(alpha: float | Sequence[float] | npt.NDArray[np.float64]) -> tuple[FloatArray, FloatArray]:
    """VaR and ES of a standard normal loss: ``z = Φ⁻¹(alpha)`` and ``φ(z) / (1 - alpha)``.

    Parameters
    ----------
    alpha : float or sequence of float
        Confidence level(s) in (0, 1).

    Returns
    -------
    (z, es_factor) : ndarrays of the shape of ``alpha``
        Multiply by σ of the P&L to get the delta-normal VaR and ES.
    """
    alphas, scalar = _alphas(alpha)
    from scipy.special import ndtri  # at the call: its import costs ~0.38 s of every CLI and API start

    z = ndtri(alphas)
    es_factor = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) / (1.0 - alphas)
    if scalar:
        return np.asarray(z[0], dtype=np.float64), np.asarray(es_factor[0], dtype=np.float64)
    return np.asarray(z, dtype=np.float64), np.asarray(es_factor, dtype=np.float64)


def parametric_var_es(
    exposures: npt.ArrayLike,
    covariance: npt.ArrayLike,
    alpha: float | Sequence[float] | npt.NDArray[np.float64] = 0.99,
    horizon_days: float = 1.0,
    bar_days: float = 1.0,
    mean: npt.ArrayLike | None = None,
) -> VarEs:
    """Delta-normal VaR and ES: ``VaR = z σ_P sqrt(h)``, ``ES = σ_P sqrt(h) φ(z) / (1 - alpha)``.

    Parameters
    ----------
    exposures : array_like of shape (n_portfolios, n_assets) or (n_assets,)
        USD delta per asset.
    covariance : array_like of shape (n_assets, n_assets)
        Covariance of returns per bar, e.g. :func:`riskcore.ewma.ewma_covariance` (λ = 0.94 on daily bars).
    alpha : float or sequence of float, default 0.99
    horizon_days, bar_days : float, default 1.0
        ``h = horizon_days / bar_days`` bars.
    mean : array_like of shape (n_assets,), optional
        Mean return per bar; the drift ``(e · mean) h`` is subtracted from both measures. Default zero.

    Returns
    -------
    VarEs
        Arrays of shape (n_portfolios,) (or () for one book), with a leading (n_alphas,) axis for a sequence; USD.
    """
    alphas, scalar = _alphas(alpha)
    scale = horizon_scale(horizon_days, bar_days)
    sigma = portfolio_sigma(exposures, covariance) * scale
    z, es_factor = normal_factors(alphas)
    shape = (len(alphas),) + (1,) * sigma.ndim
    var = z.reshape(shape) * sigma
    es = es_factor.reshape(shape) * sigma
    if mean is not None:
        drift = np.asarray(np.asarray(exposures, dtype=np.float64) @ np.asarray(mean, dtype=np.float64))
        drift = drift * scale * scale
        var = var - drift
        es = es - drift
    var = np.asarray(var, dtype=np.float64)
    es = np.asarray(es, dtype=np.float64)
    if scalar:
        return VarEs(var[0], es[0])
    return VarEs(var, es)


def normal_scenarios(covariance: npt.ArrayLike, n_scenarios: int, rng: np.random.Generator) -> FloatArray:
    """Draw zero-mean multivariate-normal return scenarios.

    The factor is ``V sqrt(w⁺)`` from the eigendecomposition ``Σ = V diag(w) Vᵀ``, where ``w⁺`` zeroes the
    eigenvalues below ``n · eps · max|w|`` (rounding noise), so a covariance that is only positive
    semi-definite (stablecoins, a hedged pair, a duplicated asset) is accepted and its exact dependencies kept.

    Parameters
    ----------
    covariance : array_like of shape (n_assets, n_assets)
        Covariance of returns per bar.
    n_scenarios : int
    rng : numpy.random.Generator
        The only source of randomness; ``rng.standard_normal((n_scenarios, n_assets))`` is drawn once.

    Returns
    -------
    ndarray of shape (n_scenarios, n_assets)
        Returns per bar.
    """
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"covariance must be square, got {cov.shape}")
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    # Eigenvalues within rounding of zero are zero: a rank-deficient covariance (a duplicated asset) gives an
    # eigenvalue of ±1e-20 rather than 0, whose square root (1e-10) would let copies of one asset drift apart.
    tol = cov.shape[0] * np.finfo(np.float64).eps * max(float(np.max(np.abs(w), initial=0.0)), 0.0)
    factor = v * np.sqrt(np.where(w > tol, w, 0.0))
    z = rng.standard_normal((n_scenarios, cov.shape[0]))
    return np.asarray(z @ factor.T, dtype=np.float64)


def bootstrap_scenarios(returns: npt.ArrayLike, n_scenarios: int, rng: np.random.Generator) -> FloatArray:
    """Resample historical return vectors (whole rows, so cross-asset dependence is kept) with replacement.

    Parameters
    ----------
    returns : array_like of shape (n_observations, n_assets)
    n_scenarios : int
    rng : numpy.random.Generator
        ``rng.integers(0, n_observations, n_scenarios)`` is drawn once.

    Returns
    -------
    ndarray of shape (n_scenarios, n_assets)
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] == 0:
        raise ValueError(f"returns must have shape (T, N) with T > 0, got {r.shape}")
    idx = rng.integers(0, r.shape[0], size=n_scenarios)
    return np.asarray(r[idx], dtype=np.float64)


def _linear_revalue(positions: FloatArray, scenario_returns: FloatArray) -> FloatArray:
    return np.asarray(positions @ scenario_returns.T, dtype=np.float64)


def scenario_var_es(
    positions: npt.ArrayLike,
    scenario_returns: npt.ArrayLike,
    alpha: float | Sequence[float] | npt.NDArray[np.float64] = 0.99,
    horizon_days: float = 1.0,
    bar_days: float = 1.0,
    revalue: Revalue | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> VarEs:
    """VaR and ES over a common set of return scenarios, revaluing the books in chunks.

    Scenario returns are scaled by ``sqrt(horizon_days / bar_days)`` *before* revaluation (for a linear book
    the same as scaling the P&L), then each portfolio's P&L over all scenarios is summarized with the historical
    convention of :func:`historical_var_es`. Only ``max_elements`` P&L values are held at once.

    Parameters
    ----------
    positions : array_like of shape (n_portfolios, ...)
        What ``revalue`` needs per portfolio; for the default linear revaluation, USD deltas (n_portfolios, n_assets).
    scenario_returns : array_like of shape (n_scenarios, n_assets)
        Returns per bar.
    alpha, horizon_days, bar_days
        As in :func:`historical_var_es`.
    revalue : callable, optional
        ``revalue(positions_chunk (p, ...), scenario_returns (S, N)) -> pnl (p, S)`` in USD, for non-linear
        books; default ``positions @ scenario_returns.T``.
    max_elements : int

    Returns
    -------
    VarEs
        Arrays of shape (n_portfolios,) or (n_alphas, n_portfolios), USD.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 0:
        raise ValueError("positions need a leading portfolio axis")
    scen = np.asarray(scenario_returns, dtype=np.float64) * horizon_scale(horizon_days, bar_days)
    fn = _linear_revalue if revalue is None else revalue
    step = _chunk_rows(pos.shape[0], scen.shape[0], max_elements)
    parts = []
    for s in range(0, pos.shape[0], step):
        chunk = pos[s : s + step]
        pnl = np.asarray(fn(chunk, scen), dtype=np.float64)
        if pnl.shape != (chunk.shape[0], scen.shape[0]):
            raise ValueError(f"revalue returned shape {pnl.shape}, expected {(chunk.shape[0], scen.shape[0])}")
        parts.append(historical_var_es(pnl, alpha))
    return VarEs(np.concatenate([p.var for p in parts], axis=-1), np.concatenate([p.es for p in parts], axis=-1))


def monte_carlo_var_es(
    positions: npt.ArrayLike,
    rng: np.random.Generator,
    n_scenarios: int,
    alpha: float | Sequence[float] | npt.NDArray[np.float64] = 0.99,
    *,
    method: Literal["normal", "bootstrap"] = "normal",
    covariance: npt.ArrayLike | None = None,
    returns: npt.ArrayLike | None = None,
    horizon_days: float = 1.0,
    bar_days: float = 1.0,
    revalue: Revalue | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> VarEs:
    """Monte Carlo VaR and ES: draw scenarios once with ``rng``, then :func:`scenario_var_es`.

    All portfolios see the same scenarios (common random numbers), so the result for a fixed ``rng`` state does
    not depend on ``max_elements``.

    Parameters
    ----------
    positions : array_like of shape (n_portfolios, ...)
        USD deltas (n_portfolios, n_assets) for the default linear revaluation.
    rng : numpy.random.Generator
    n_scenarios : int
    alpha : float or sequence of float
    method : {"normal", "bootstrap"}
        ``"normal"``: :func:`normal_scenarios` from ``covariance`` (N, N). ``"bootstrap"``:
        :func:`bootstrap_scenarios` from ``returns`` (T, N).
    horizon_days, bar_days, revalue, max_elements
        As in :func:`scenario_var_es`.

    Returns
    -------
    VarEs
        Arrays of shape (n_portfolios,) or (n_alphas, n_portfolios), USD.
    """
    if n_scenarios < 1:
        raise ValueError(f"n_scenarios must be positive, got {n_scenarios}")
    if method == "normal":
        if covariance is None:
            raise ValueError("method='normal' needs covariance")
        scen = normal_scenarios(covariance, n_scenarios, rng)
    elif method == "bootstrap":
        if returns is None:
            raise ValueError("method='bootstrap' needs returns")
        scen = bootstrap_scenarios(returns, n_scenarios, rng)
    else:
        raise ValueError(f"unknown method {method!r}")
    return scenario_var_es(positions, scen, alpha, horizon_days, bar_days, revalue, max_elements)
