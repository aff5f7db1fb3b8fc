"""The one place where on-chain integer scales become numbers.

Scales used by the venues::

    WAD   1e18   lending health factors, LLTVs, most 18-decimal fixed point
    RAY   1e27   lending indexes and rates
    BPS   1e4    LTV, liquidation threshold and bonus
    E8    1e8    Chainlink USD answers, USD base currencies
    E30   1e30   GMX USD values
    E36   1e36   isolated-market oracle prices (36 + loan decimals - collateral decimals)
    token decimals  ERC-20 amounts

Conversions to ``float`` divide exact Python integers (``int / int`` is correctly rounded), so the
only error is the final rounding to binary64. The reverse conversion (:func:`to_raw`) is exact and
refuses floats, which cannot represent most decimal amounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import numpy as np
import numpy.typing as npt

__all__ = [
    "BPS",
    "E8",
    "E30",
    "E36",
    "RAY",
    "UINT256_MAX",
    "WAD",
    "bps_to_fraction",
    "from_raw",
    "from_raw_array",
    "ray_to_float",
    "to_raw",
    "wad_to_float",
]

WAD = 10**18
RAY = 10**27
BPS = 10**4
E8 = 10**8
E30 = 10**30
E36 = 10**36
UINT256_MAX = 2**256 - 1


def from_raw(raw: int, decimals: int) -> float:
    """Return ``raw / 10**decimals`` as a float, correctly rounded.

    Parameters
    ----------
    raw : int
        On-chain integer (any sign, any size).
    decimals : int
        Number of decimals of the scale (18 for WAD, 27 for RAY, a token's ``decimals()``).
    """
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TypeError(f"raw amounts are integers, got {type(raw).__name__}")
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    scale: int = 10**decimals
    return raw / scale


def from_raw_array(raws: Sequence[int], decimals: int | Sequence[int]) -> npt.NDArray[np.float64]:
    """Vector form of :func:`from_raw`.

    Parameters
    ----------
    raws : sequence of int, length n
    decimals : int or sequence of int of length n

    Returns
    -------
    ndarray of shape (n,), float64
    """
    decs = [decimals] * len(raws) if isinstance(decimals, int) else list(decimals)
    if len(decs) != len(raws):
        raise ValueError(f"{len(raws)} amounts but {len(decs)} decimals")
    return np.fromiter((from_raw(r, d) for r, d in zip(raws, decs, strict=True)), np.float64, len(raws))


def to_raw(amount: Decimal | int | str | Fraction, decimals: int) -> int:
    """Return the integer ``amount * 10**decimals``, exactly; refuses floats and sub-unit remainders.

    Raises :class:`TypeError` for a float, :class:`ValueError` for text that is not a finite decimal number (and
    for NaN / infinite Decimals) or an amount with more than ``decimals`` decimals.
    """
    if isinstance(amount, float):
        raise TypeError("to_raw takes Decimal, int, str or Fraction, not float (floats are inexact)")
    try:
        value = Fraction(Decimal(amount)) if isinstance(amount, str) else Fraction(amount)
    except (ArithmeticError, ValueError) as exc:  # decimal.InvalidOperation (malformed text), NaN, ±Infinity
        raise ValueError(f"not a finite decimal amount: {amount!r}") from exc
    scaled = value * 10**decimals
    if scaled.denominator != 1:
        raise ValueError(f"{amount} has more than {decimals} decimals")
    return int(scaled)


def wad_to_float(raw: int) -> float:
    """WAD (1e18) fixed point to float."""
    return from_raw(raw, 18)


def ray_to_float(raw: int) -> float:
    """RAY (1e27) fixed point to float."""
    return from_raw(raw, 27)


def bps_to_fraction(raw: int) -> float:
    """Basis points (1e4) to a fraction: 8_250 → 0.825."""
    return from_raw(raw, 4)
