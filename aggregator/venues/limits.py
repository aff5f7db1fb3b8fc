"""The largest amount a venue accepts (a withdrawal, a borrow) by bisection on the venue's own exact rule."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["largest_passing"]


def largest_passing(ok: Callable[[int], bool], upper: int, guess: int | None = None) -> int:
    """The largest ``x`` in ``[0, upper]`` with ``ok(x)``, for ``ok`` true up to a boundary and false after it
    (0 when even ``ok(0)`` fails). ``guess`` (a float estimate of the boundary) narrows the bisection."""
    if upper <= 0 or ok(upper):
        return max(upper, 0)
    if not ok(0):
        return 0
    lo, hi = 0, upper  # ok(lo), not ok(hi)
    if guess is not None and 0 < guess < upper:
        width = guess // 10**9 + 1
        below, above = max(guess - width, 0), min(guess + width, upper)
        if ok(below):
            lo = below
            if not ok(above):
                hi = above
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo
