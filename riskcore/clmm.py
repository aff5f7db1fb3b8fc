"""Concentrated-liquidity positions in floating point: principal amounts, value and price exposure of many
positions under many price scenarios, for any pool of the ``x·y = L²`` range kind.

``sqrt_price`` is the square root of the pool's raw price ``token1_raw / token0_raw``. The *human* price of
the pool is

    P = (sqrt_price)**2 * 10**(decimals0 - decimals1)        [token1 per token0]

and the position's value in token1, ``V(P) = x(P) * P + y(P)`` (``x``, ``y`` the token0 and token1 amounts
in human units). Because the pool's curve satisfies ``y'(P) = -P * x'(P)``:

* **delta** ``dV/dP = x(P)`` — the token0 the position holds (token0 units), everywhere: in range, below
  the range (all token0, ``V = x * P``) and above it (``x = 0``, ``V`` constant);
* **gamma** ``d²V/dP² = x'(P) = -L_h / (2 * P**1.5)`` strictly inside the range and 0 outside, with the
  human liquidity ``L_h = L / 10**((decimals0 + decimals1) / 2)``; units token0 per (token1 per token0).
  Gamma jumps at the range bounds (the second derivative does not exist there).

In US dollars, with ``p0``, ``p1`` the tokens' USD prices and the pool arbitraged to ``P = p0 / p1``,
``V_usd(p0, p1) = x * p0 + y * p1`` has ``∂V/∂p0 = x`` and ``∂V/∂p1 = y`` (the held amounts are the
deltas for netting against other venues) and the Hessian ``∂²V/∂p0² = γ / p1``,
``∂²V/∂p0∂p1 = -P γ / p1``, ``∂²V/∂p1² = P² γ / p1`` (units token_i × token_j per USD).

The exact integer path of a venue (its contracts' own rounding, to the wei) lives in its module under
``riskcore/venues/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "FloatArray",
    "LpGreeks",
    "LpUsdGreeks",
    "amounts_float",
    "human_price",
    "lp_greeks",
    "lp_usd_greeks",
    "sqrt_price_float",
    "value_under_price_multipliers",
]

Q96 = 2**96

# --- float path --------------------------------------------------------------------------------------------
FloatArray = npt.NDArray[np.float64]


def sqrt_price_float(sqrt_price_x96: int | npt.ArrayLike) -> FloatArray:
    """Q64.96 sqrt prices (Python ints, any size) to float ``sqrt(token1_raw / token0_raw)``."""
    if isinstance(sqrt_price_x96, int):
        return np.asarray(sqrt_price_x96 / Q96, dtype=np.float64)
    flat = [int(v) / Q96 for v in np.asarray(sqrt_price_x96, dtype=object).ravel()]
    return np.asarray(flat, dtype=np.float64).reshape(np.shape(sqrt_price_x96))


def human_price(sqrt_price: npt.ArrayLike, decimals0: npt.ArrayLike, decimals1: npt.ArrayLike) -> FloatArray:
    """``P = sqrt_price**2 * 10**(decimals0 - decimals1)``: token1 per token0 in whole tokens."""
    s = np.asarray(sqrt_price, dtype=np.float64)
    d = np.asarray(decimals0, dtype=np.float64) - np.asarray(decimals1, dtype=np.float64)
    return np.asarray(s * s * np.power(10.0, d), dtype=np.float64)


def amounts_float(
    liquidity: npt.ArrayLike, sqrt_price: npt.ArrayLike, sqrt_lower: npt.ArrayLike, sqrt_upper: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Principal amounts of positions, in floating point.

    Parameters
    ----------
    liquidity : array_like, shape (...)
        Raw liquidity ``L``.
    sqrt_price, sqrt_lower, sqrt_upper : array_like, broadcastable with ``liquidity``
        ``sqrt(token1_raw / token0_raw)`` of the pool and of the range bounds (``sqrt_price_x96 / 2**96``).

    Returns
    -------
    (amount0_raw, amount1_raw) : tuple of ndarray, the broadcast shape
        ``x = L (1/s - 1/s_b)``, ``y = L (s - s_a)`` with ``s`` clipped to ``[s_a, s_b]``; raw token units.
    """
    liq = np.asarray(liquidity, dtype=np.float64)
    lo = np.asarray(sqrt_lower, dtype=np.float64)
    hi = np.asarray(sqrt_upper, dtype=np.float64)
    s = np.clip(np.asarray(sqrt_price, dtype=np.float64), lo, hi)
    return liq * (1.0 / s - 1.0 / hi), liq * (s - lo)


@dataclass(frozen=True, slots=True)
class LpGreeks:
    """Value and exposure in the pool's own price ``P`` (token1 per token0, whole tokens); arrays, one shape."""

    price: FloatArray
    """``P``, token1 per token0."""
    amount0: FloatArray
    """``x``, token0 held (whole tokens); also the delta ``dV/dP``."""
    amount1: FloatArray
    """``y``, token1 held (whole tokens)."""
    value_token1: FloatArray
    """``V = x P + y``, in token1."""
    delta: FloatArray
    """``dV/dP = x``, token0."""
    gamma: FloatArray
    """``d²V/dP² = -L_h / (2 P**1.5)`` strictly inside the range, else 0; token0 per (token1 per token0)."""


def lp_greeks(
    liquidity: npt.ArrayLike,
    sqrt_price: npt.ArrayLike,
    sqrt_lower: npt.ArrayLike,
    sqrt_upper: npt.ArrayLike,
    decimals0: npt.ArrayLike,
    decimals1: npt.ArrayLike,
) -> LpGreeks:
    """Value, delta and gamma of positions with respect to the pool price ``P`` (see the module notes).

    Parameters
    ----------
    liquidity : array_like, shape (...)
        Raw liquidity.
    sqrt_price, sqrt_lower, sqrt_upper : array_like, broadcastable
        Float sqrt prices of the raw price (``sqrt_price_x96 / 2**96``).
    decimals0, decimals1 : array_like of int, broadcastable
        The tokens' decimals.

    Returns
    -------
    LpGreeks
        Arrays of the broadcast shape, in whole tokens.
    """
    d0 = np.asarray(decimals0, dtype=np.float64)
    d1 = np.asarray(decimals1, dtype=np.float64)
    x_raw, y_raw = amounts_float(liquidity, sqrt_price, sqrt_lower, sqrt_upper)
    x = x_raw / np.power(10.0, d0)
    y = y_raw / np.power(10.0, d1)
    price = human_price(sqrt_price, d0, d1)
    s = np.asarray(sqrt_price, dtype=np.float64)
    inside = (s > np.asarray(sqrt_lower, dtype=np.float64)) & (s < np.asarray(sqrt_upper, dtype=np.float64))
    liq_h = np.asarray(liquidity, dtype=np.float64) / np.power(10.0, (d0 + d1) / 2.0)
    gamma = np.where(inside, -liq_h / (2.0 * price**1.5), 0.0)
    x, y, price, gamma = np.broadcast_arrays(x, y, price, gamma)
    return LpGreeks(
        price=np.array(price),
        amount0=np.array(x),
        amount1=np.array(y),
        value_token1=np.array(x * price + y),
        delta=np.array(x),
        gamma=np.array(gamma),
    )


@dataclass(frozen=True, slots=True)
class LpUsdGreeks:
    """Value and exposure in the tokens' USD prices ``p0``, ``p1``; arrays, one shape."""

    value_usd: FloatArray
    delta0: FloatArray
    """``∂V/∂p0 = x``: token0 units (net it against token0 held or owed elsewhere)."""
    delta1: FloatArray
    """``∂V/∂p1 = y``: token1 units."""
    gamma00: FloatArray
    """``∂²V/∂p0² = γ / p1``: token0² per USD."""
    gamma01: FloatArray
    """``∂²V/∂p0∂p1 = -P γ / p1``: token0 × token1 per USD."""
    gamma11: FloatArray
    """``∂²V/∂p1² = P² γ / p1``: token1² per USD."""


def lp_usd_greeks(
    liquidity: npt.ArrayLike,
    sqrt_price: npt.ArrayLike,
    sqrt_lower: npt.ArrayLike,
    sqrt_upper: npt.ArrayLike,
    decimals0: npt.ArrayLike,
    decimals1: npt.ArrayLike,
    price0_usd: npt.ArrayLike,
    price1_usd: npt.ArrayLike,
) -> LpUsdGreeks:
    """USD value, deltas and Hessian of positions in ``(p0, p1)``, with the pool arbitraged to ``P = p0 / p1``.

    The deltas are the amounts held at the pool's price; the Hessian uses :func:`lp_greeks`' gamma at the
    pool's price. Shapes broadcast as in :func:`lp_greeks`; ``price{0,1}_usd`` are USD per whole token.
    """
    g = lp_greeks(liquidity, sqrt_price, sqrt_lower, sqrt_upper, decimals0, decimals1)
    p0 = np.asarray(price0_usd, dtype=np.float64)
    p1 = np.asarray(price1_usd, dtype=np.float64)
    gamma_per_p1 = g.gamma / p1
    value = g.amount0 * p0 + g.amount1 * p1
    value, delta0, delta1, g00, g01, g11 = np.broadcast_arrays(
        value, g.amount0, g.amount1, gamma_per_p1, -g.price * gamma_per_p1, g.price**2 * gamma_per_p1
    )
    return LpUsdGreeks(
        value_usd=np.array(value),
        delta0=np.array(delta0),
        delta1=np.array(delta1),
        gamma00=np.array(g00),
        gamma01=np.array(g01),
        gamma11=np.array(g11),
    )


def value_under_price_multipliers(
    liquidity: npt.ArrayLike,
    sqrt_price: npt.ArrayLike,
    sqrt_lower: npt.ArrayLike,
    sqrt_upper: npt.ArrayLike,
    decimals0: npt.ArrayLike,
    decimals1: npt.ArrayLike,
    price0_usd: npt.ArrayLike,
    price1_usd: npt.ArrayLike,
    multiplier0: npt.ArrayLike,
    multiplier1: npt.ArrayLike,
    fees0: npt.ArrayLike = 0.0,
    fees1: npt.ArrayLike = 0.0,
) -> FloatArray:
    """USD value of positions when the tokens' USD prices are multiplied by scenario factors.

    The pool follows the ratio (arbitrage): its sqrt price becomes ``sqrt_price * sqrt(m0 / m1)``, the
    principal is re-split along the curve, and everything (principal and the fixed ``fees``) is valued at
    ``p0 m0`` and ``p1 m1``.

    Parameters
    ----------
    liquidity, sqrt_price, sqrt_lower, sqrt_upper, decimals0, decimals1, price0_usd, price1_usd :
        array_like, shape (n,)
        One entry per position (float sqrt prices of the raw price, USD per whole token).
    multiplier0, multiplier1 : array_like, shape (..., n)
        Each scenario's factor on the position's token0 / token1 USD price (e.g. shape (m, n) for m
        scenarios; 1.0 is today).
    fees0, fees1 : array_like, shape (n,), optional
        Uncollected fees, whole tokens.

    Returns
    -------
    ndarray, shape (..., n)
        USD value per scenario and position.
    """
    m0 = np.asarray(multiplier0, dtype=np.float64)
    m1 = np.asarray(multiplier1, dtype=np.float64)
    s = np.asarray(sqrt_price, dtype=np.float64) * np.sqrt(m0 / m1)
    x_raw, y_raw = amounts_float(liquidity, s, sqrt_lower, sqrt_upper)
    x = x_raw / np.power(10.0, np.asarray(decimals0, dtype=np.float64)) + np.asarray(fees0, dtype=np.float64)
    y = y_raw / np.power(10.0, np.asarray(decimals1, dtype=np.float64)) + np.asarray(fees1, dtype=np.float64)
    p0 = np.asarray(price0_usd, dtype=np.float64) * m0
    p1 = np.asarray(price1_usd, dtype=np.float64) * m1
    return np.asarray(x * p0 + y * p1, dtype=np.float64)
