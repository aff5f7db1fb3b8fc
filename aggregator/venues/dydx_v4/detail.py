"""dYdX v4's typed details: the perp account's figures, as every perp venue stores them."""

from __future__ import annotations

from aggregator.venues.detail import PerpHealthDetail

__all__ = ["PerpHealthDetail"]
