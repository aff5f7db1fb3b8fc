"""dYdX v4's own perp margin rule."""

from __future__ import annotations

from riskcore.venues.dydx_v4.health import (
    DydxFigures,
    check_dydx,
    dydx_health,
    dydx_initial_margin_fraction,
)
from riskcore.venues.dydx_v4.recompute import DydxReport, dydx_reported_at

__all__ = [
    "DydxFigures",
    "DydxReport",
    "check_dydx",
    "dydx_health",
    "dydx_initial_margin_fraction",
    "dydx_reported_at",
]
