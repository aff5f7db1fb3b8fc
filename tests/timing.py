"""How patient the tests are with the wall clock (not a test module).

A test that injects a delay and checks what a deadline made of it (a timeout retried, an answer cut off, a
startup that is quick) depends on the machine keeping up. On a loaded machine, or with the suite spread over
xdist workers, a 1 s deadline can pass before the product had a fair chance. Such tests scale every duration
they inject *and* every deadline they set or check by :func:`time_scale` together, so what is asserted (the
order of events: delay < deadline < hold) is the same at every scale; only the patience grows.

``XMARGIN_TEST_TIME_SCALE`` sets it (``tests/conftest.py`` defaults it to 2 for the suite); 1 is the product's
real deadlines, which ``docs/reliability.py`` uses for the published figures.
"""

from __future__ import annotations

import os

__all__ = ["scaled", "time_scale"]


def time_scale() -> float:
    """The factor every injected duration and deadline of a timing test is multiplied by (≥ 1)."""
    raw = os.environ.get("XMARGIN_TEST_TIME_SCALE", "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"XMARGIN_TEST_TIME_SCALE must be a number ≥ 1, not {raw!r}") from None
    if not scale >= 1.0:
        raise ValueError(f"XMARGIN_TEST_TIME_SCALE must be a number ≥ 1, not {raw!r}")
    return scale


def scaled(seconds: float) -> float:
    """``seconds`` at the tests' time scale."""
    return seconds * time_scale()
