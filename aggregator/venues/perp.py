"""What every perp venue's sync shares: from a venue's recomputed margin health to per-wallet views.

Each perp venue (``aggregator/venues/<venue>/sync.py``) recomputes its accounts' equity, maintenance requirement
and liquidation prices from the decoded positions with its own margin rule and compares them with the figures
the venue reports in the same answer. A disagreement beyond rounding is not accepted silently: the health is flagged
``venue_disagreement`` with every discrepancy listed, and ``matches_onchain`` is false.

Health factor = equity / maintenance requirement of the weakest margin account (cross, or an isolated
position), < 1 when the venue would liquidate. Perp instruments are stored as off-chain assets
``<venue>:<COIN>`` with sizes in 1e-8 units (``amount_raw``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from aggregator.venues.detail import PerpHealthDetail, PerpPositionDetail
from aggregator.views import PositionView, VenueHealth
from riskcore.perp import PerpHealth, VenueCheck

__all__ = ["SIZE_DECIMALS", "finite_or_none", "implied_marks", "perp_health", "perp_position"]

SIZE_DECIMALS = 8
"""Perp sizes are stored as integers of 1e-8 base units."""


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def perp_position(
    venue: str, coin: str, size: Decimal, mark: float, detail: PerpPositionDetail, equity_usd: float
) -> PositionView:
    """One perp position; its detail (the venue's model, with the venue's own figures) gains the mark, the notional
    and the leverage it makes of the account's equity (|notional| ÷ equity: what a trader calls the position's
    effective leverage)."""
    notional = float(size) * mark
    stored = detail.updated(mark_px=mark, notional_usd=notional,
                            effective_leverage=abs(notional) / equity_usd if equity_usd > 0 else None).stored()
    amount_raw = int(size.scaleb(SIZE_DECIMALS).to_integral_value())
    entry = getattr(detail, "entry_px", None)
    return PositionView(
        asset=coin, asset_address=f"{venue}:{coin}", decimals=SIZE_DECIMALS, side="perp",
        amount_raw=amount_raw, amount=float(size), price_usd=mark,
        value_usd=notional, is_collateral=False, market_key=f"{venue}:{coin}", extra=stored,
        state=f"size={amount_raw};entry={entry}",  # what only the account's trades change
    )


def implied_marks(szi: npt.ArrayLike, position_value_usd: npt.ArrayLike) -> list[float]:
    """The marks a venue that reports position values marks them at: ``positionValue / |szi|`` (as floats)."""
    size = np.abs(np.asarray(szi, dtype=np.float64))
    value = np.asarray(position_value_usd, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [float(x) for x in np.where(size != 0, value / np.where(size != 0, size, 1.0), 0.0)]


def perp_health(
    wallet: str, venue: str, health: PerpHealth, check: VenueCheck, positions: Sequence[PositionView],
    detail: PerpHealthDetail,
) -> VenueHealth:
    """One account's health; its detail (the venue's model, with the venue's own figures) gains the account's
    equity, maintenance margin, liquidation prices and the discrepancies with the venue's own figures."""
    equity = float(np.sum(health.equity_usd))
    maintenance = float(np.sum(health.maintenance_usd))
    finite = [h for h in health.health if math.isfinite(h)]
    hf = min(finite) if finite and maintenance > 0 else None
    liq = {label: finite_or_none(float(px))
           for label, px in zip(health.position_labels, health.liquidation_px, strict=True)}
    flags = [] if check.ok else ["venue_disagreement"]
    if health.any_liquidatable:
        flags.append("liquidatable")
    return VenueHealth(
        wallet=wallet, venue=venue, kind="perp", health_factor=hf, health_factor_raw=None,
        onchain_health_factor_raw=None, matches_onchain=check.ok, collateral_usd=equity, debt_usd=0.0,
        liquidation_threshold=None, positions=tuple(positions), flags=tuple(flags),
        extra=detail.updated(
            equity_usd=equity,
            maintenance_margin_usd=maintenance,
            liquidation_price=liq,
            discrepancies=[str(d) for d in check.discrepancies],
        ).stored(),
    )
