"""dYdX v4's own perp margin rule."""

from __future__ import annotations

from riskcore.venues.dydx_v4.health import (
    DydxFigures,
    check_dydx,
    dydx_health,
    dydx_initial_margin_fraction,
)

__all__ = [
    "DydxFigures",
    "check_dydx",
    "dydx_health",
    "dydx_initial_margin_fraction",
]
