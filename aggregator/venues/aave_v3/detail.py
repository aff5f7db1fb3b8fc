"""Aave v3's typed details: what a position carries of the reserve's rule."""

from __future__ import annotations

from pydantic import StrictInt

from aggregator.venues.detail import Detail

__all__ = ["AavePositionDetail"]


class AavePositionDetail(Detail):
    """A collateral or debt position: the liquidation threshold and bonus in force for it (e-mode's where the
    wallet's category applies), in bps; ``None`` when the venue stored none."""

    liquidation_threshold_bps: StrictInt | None = None
    liquidation_bonus_bps: StrictInt | None = None
