"""Integer fixed-point operations with the protocols' own rounding.

``WadRayMath`` and ``PercentageMath`` (WAD / RAY / bps arithmetic) round half up; ``MathLib``'s ``mulDiv``
rounds down or up as named. All inputs and outputs are non-negative Python ints (unbounded, so the uint256
overflow checks of the Solidity versions are asserted explicitly where the protocol would revert).
"""

from __future__ import annotations

__all__ = [
    "HALF_PERCENTAGE_FACTOR",
    "HALF_RAY",
    "HALF_WAD",
    "PERCENTAGE_FACTOR",
    "mul_div_down",
    "mul_div_up",
    "percent_mul",
    "ray_div",
    "ray_mul",
    "wad_div",
    "wad_mul",
]

WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
PERCENTAGE_FACTOR = 10**4
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2


def wad_mul(a: int, b: int) -> int:
    """``a * b / WAD`` rounded half up (``WadRayMath.wadMul``)."""
    return (a * b + HALF_WAD) // WAD


def wad_div(a: int, b: int) -> int:
    """``a * WAD / b`` rounded half up (``WadRayMath.wadDiv``)."""
    if b == 0:
        raise ZeroDivisionError("wad_div by zero")
    return (a * WAD + b // 2) // b


def ray_mul(a: int, b: int) -> int:
    """``a * b / RAY`` rounded half up (``WadRayMath.rayMul``)."""
    return (a * b + HALF_RAY) // RAY


def ray_div(a: int, b: int) -> int:
    """``a * RAY / b`` rounded half up (``WadRayMath.rayDiv``)."""
    if b == 0:
        raise ZeroDivisionError("ray_div by zero")
    return (a * RAY + b // 2) // b


def percent_mul(value: int, percentage_bps: int) -> int:
    """``value * percentage / 1e4`` rounded half up (``PercentageMath.percentMul``)."""
    return (value * percentage_bps + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def mul_div_down(x: int, y: int, d: int) -> int:
    """``x * y / d`` rounded down (``MathLib.mulDivDown``)."""
    return (x * y) // d


def mul_div_up(x: int, y: int, d: int) -> int:
    """``x * y / d`` rounded up (``MathLib.mulDivUp``)."""
    return (x * y + (d - 1)) // d
