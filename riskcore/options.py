"""Black-76: European options on futures / forwards, priced and differentiated in closed form, vectorized.

With forward ``F``, strike ``K``, time to expiry ``T`` (years), volatility ``σ`` (annualized), discount rate ``r``
(continuously compounded, per year), ``DF = exp(−rT)``, ``s = σ√T``, ``d1 = ln(F/K)/s + s/2``, ``d2 = d1 − s``
and ``w = +1`` for a call, ``−1`` for a put::

    price  = DF · w · (F·N(w·d1) − K·N(w·d2))
    delta  = ∂price/∂F  = DF · w · N(w·d1)
    gamma  = ∂²price/∂F² = DF · φ(d1) / (F·s)
    vega   = ∂price/∂σ  = DF · F · φ(d1) · √T
    theta  = −∂price/∂T = r·price − DF · F · φ(d1) · σ / (2√T)

Units and conventions
---------------------
* Prices are in the currency of ``F`` and ``K`` (USD for USD-quoted forwards) per unit of underlying.
* ``vega`` is per unit of volatility (per 1.00 = 100 vol points); multiply by 0.01 for "per vol point".
* ``theta`` is per year of calendar time (ACT/365: crypto trades every day); ``theta_per_day = theta / 365``.
  It is the change in value as time passes with ``F`` and ``σ`` fixed (usually negative for long options).
* ``r`` defaults to 0: crypto options settle on the future itself (Deribit), so there is no discounting.
* At ``s = 0`` (expiry or zero volatility) the option is its discounted intrinsic value; delta is ``DF`` in the
  money, 0 out of it, ``DF/2`` exactly at the money (so put-call parity holds); gamma and vega are 0.
* N(·) is ``scipy.special.ndtr`` (exact to double precision, ~60 M evaluations/s).

:func:`scenario_values` reprices options under a :class:`~riskcore.scenarios.ScenarioSet` (forward moved with its
underlying's multiplier, volatility shocked by the scenario's rule, time shortened by the horizon).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.scenarios import ScenarioSet

__all__ = [
    "DAYS_PER_YEAR",
    "Black76Greeks",
    "black76_greeks",
    "black76_price",
    "scenario_values",
]


def _ndtr(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``scipy.special.ndtr``, imported at the first call: ``scipy.special`` costs about 0.38 s to import, paid by
    every ``xmargin serve`` start otherwise (its what-if schema loads the venues' rules, which load this module)."""
    from scipy.special import ndtr

    out: npt.NDArray[np.float64] = ndtr(x)
    return out


DAYS_PER_YEAR = 365.0
"""Calendar days per year for time to expiry and theta (ACT/365)."""

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)

Float = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Black76Greeks:
    """Black-76 value and sensitivities, each an array of the broadcast shape of the inputs.

    Attributes
    ----------
    price : ndarray
        Option value, currency per unit of underlying.
    delta : ndarray
        ∂price/∂F (dimensionless; a call's is in [0, DF]).
    gamma : ndarray
        ∂²price/∂F², per unit of currency.
    vega : ndarray
        ∂price/∂σ, per 1.00 of volatility.
    theta_per_year : ndarray
        −∂price/∂T, per calendar year.
    """

    price: Float
    delta: Float
    gamma: Float
    vega: Float
    theta_per_year: Float

    @property
    def theta_per_day(self) -> Float:
        """Theta per calendar day (``theta_per_year / 365``)."""
        return self.theta_per_year / DAYS_PER_YEAR

    @property
    def vega_per_vol_point(self) -> Float:
        """Vega per vol point (per 0.01 of volatility)."""
        return self.vega * 0.01


def _prepare(
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_years: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
    rate: npt.ArrayLike,
) -> tuple[Float, Float, Float, Float, Float, Float]:
    f, k, t, v, r = (np.asarray(x, dtype=np.float64) for x in (forward, strike, time_years, vol, rate))
    w = np.where(np.asarray(is_call, dtype=bool), 1.0, -1.0)
    if np.any(f < 0) or np.any(k <= 0) or np.any(t < 0) or np.any(v < 0):
        raise ValueError("Black-76 needs forward >= 0, strike > 0, time_years >= 0 and vol >= 0")
    f, k, t, v, r, w = np.broadcast_arrays(f, k, t, v, r, w)
    return f, k, t, v, r, w


def _core(
    f: Float, k: Float, t: Float, v: Float, r: Float, w: Float
) -> tuple[Float, Float, Float, Float, Float, Float, Float]:
    """Return (df, sqrt_t, s, d1, pdf(d1), N(w·d1), N(w·d2)), safe where ``s == 0`` or ``F == 0``."""
    df = np.exp(-r * t) if np.any(r != 0) else np.ones_like(t)
    sqrt_t = np.sqrt(t)
    s = v * sqrt_t
    live = (s > 0) & (f > 0)
    if live.all():  # fast path: no degenerate cells to mask
        d1 = np.log(f / k) / s + 0.5 * s
        d2 = d1 - s
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
        return df, sqrt_t, s, d1, pdf, _ndtr(w * d1), _ndtr(w * d2)
    s_safe = np.where(live, s, 1.0)
    with np.errstate(divide="ignore"):
        log_fk = np.log(np.where(live, f, 1.0) / k)
    d1 = np.where(live, log_fk / s_safe + 0.5 * s_safe, 0.0)
    d2 = d1 - np.where(live, s_safe, 0.0)
    pdf = np.where(live, _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1), 0.0)
    # Dead cells (s == 0 or F == 0): the limit of N(w·d) as s → 0 is a step at F = K (½ at the money).
    step = np.where(f > k, 1.0, np.where(f < k, 0.0, 0.5))
    step_w = np.where(w > 0, step, 1.0 - step)
    n1 = np.where(live, _ndtr(w * d1), step_w)
    n2 = np.where(live, _ndtr(w * d2), step_w)
    return df, sqrt_t, s, d1, pdf, n1, n2


def black76_price(
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_years: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
    rate: npt.ArrayLike = 0.0,
) -> Float:
    """Black-76 price of European options on a forward.

    Parameters
    ----------
    forward : array_like
        Forward / futures price F (≥ 0), currency per unit of underlying.
    strike : array_like
        Strike K (> 0), same currency.
    time_years : array_like
        Time to expiry T in years (ACT/365), ≥ 0.
    vol : array_like
        Annualized volatility σ (0.6 = 60%), ≥ 0.
    is_call : array_like of bool
        True for calls, False for puts.
    rate : array_like, default 0
        Continuously compounded discount rate per year.

    All inputs broadcast against each other.

    Returns
    -------
    ndarray of the broadcast shape
        Option value, currency per unit of underlying.
    """
    f, k, t, v, r, w = _prepare(forward, strike, time_years, vol, is_call, rate)
    df, _, _, _, _, n1, n2 = _core(f, k, t, v, r, w)
    return np.asarray(df * w * (f * n1 - k * n2), dtype=np.float64)


def black76_greeks(
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_years: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
    rate: npt.ArrayLike = 0.0,
) -> Black76Greeks:
    """Black-76 price, delta, gamma, vega and theta in one pass (inputs as :func:`black76_price`).

    Returns
    -------
    Black76Greeks
        Arrays of the broadcast shape; see the module docstring for units.
    """
    f, k, t, v, r, w = _prepare(forward, strike, time_years, vol, is_call, rate)
    df, sqrt_t, s, _, pdf, n1, n2 = _core(f, k, t, v, r, w)
    price = df * w * (f * n1 - k * n2)
    delta = df * w * n1
    live = s > 0
    s_safe = np.where(live, s, 1.0)
    f_safe = np.where(f > 0, f, 1.0)
    gamma = np.where(live & (f > 0), df * pdf / (f_safe * s_safe), 0.0)
    vega = df * f * pdf * sqrt_t
    t_safe = np.where(sqrt_t > 0, sqrt_t, 1.0)
    theta = r * price - np.where(sqrt_t > 0, df * f * pdf * v / (2.0 * t_safe), 0.0)
    return Black76Greeks(
        price=np.asarray(price, dtype=np.float64),
        delta=np.asarray(delta, dtype=np.float64),
        gamma=np.asarray(gamma, dtype=np.float64),
        vega=np.asarray(vega, dtype=np.float64),
        theta_per_year=np.asarray(theta, dtype=np.float64),
    )


def scenario_values(
    forward: npt.ArrayLike,
    strike: npt.ArrayLike,
    time_years: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
    underlying_index: npt.ArrayLike,
    scenarios: ScenarioSet,
    rate: npt.ArrayLike = 0.0,
) -> Float:
    """Reprice N options under every scenario of a set (full revaluation).

    Parameters
    ----------
    forward, strike, time_years, vol, is_call, rate : array_like of shape (N,) (or broadcastable)
        Today's inputs, as :func:`black76_price`.
    underlying_index : array_like of int, shape (N,)
        Column of ``scenarios.underlyings`` each option's forward moves with.
    scenarios : ScenarioSet
        S scenarios: the forward is multiplied by the underlying's price multiplier, the volatility is shocked by
        :meth:`ScenarioSet.shocked_vols` (with today's days to expiry), and the time to expiry shortens by
        ``horizon_days / 365`` (floored at 0: an option expiring inside the horizon is worth its intrinsic value).

    Returns
    -------
    ndarray of shape (S, N)
        Option values after each scenario, currency per unit of underlying. P&L = values − today's price.
    """
    idx = np.asarray(underlying_index, dtype=np.intp)
    f, k, t, v, r, w = _prepare(forward, strike, time_years, vol, is_call, rate)
    f, k, t, v, r, w, idx = np.broadcast_arrays(f, k, t, v, r, w, idx)
    shocked_f = scenarios.shocked_prices(f, idx)
    shocked_v = scenarios.shocked_vols(v, idx, days_to_expiry=t * DAYS_PER_YEAR)
    t_after = np.maximum(t - scenarios.horizon_days / DAYS_PER_YEAR, 0.0)
    return black76_price(shocked_f, k, t_after, shocked_v, w > 0, r)
