"""Perp venues (Hyperliquid, dYdX v4): from the connectors' snapshots to per-wallet margin health.

xmargin recomputes each account's equity, maintenance requirement and liquidation prices from the decoded
positions (``riskcore.health.perp``) and compares them with the figures the venue reports in the same
answer. A disagreement beyond rounding is not accepted silently: the health is flagged
``venue_disagreement`` with every discrepancy listed, and ``matches_onchain`` is false.

Health factor = equity / maintenance requirement of the weakest margin account (cross, or an isolated
position), < 1 when the venue would liquidate. Perp instruments are stored as off-chain assets
``<venue>:<COIN>`` with sizes in 1e-8 units (``amount_raw``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from aggregator.views import PositionView, VenueHealth, VenueReading
from connectors.dydx_v4.models import DydxSnapshot
from connectors.hyperliquid.models import HyperliquidSnapshot
from connectors.types import BlockRef
from riskcore.health.perp import (
    DydxFigures,
    HyperliquidFigures,
    PerpHealth,
    VenueCheck,
    check_dydx,
    check_hyperliquid,
    dydx_health,
    hyperliquid_health,
)

__all__ = ["SIZE_DECIMALS", "evaluate_dydx", "evaluate_hyperliquid"]

SIZE_DECIMALS = 8
"""Perp sizes are stored as integers of 1e-8 base units."""


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _position(
    venue: str, coin: str, size: Decimal, mark: float, detail: dict[str, object], equity_usd: float
) -> PositionView:
    """One perp position; its detail gains the mark, the notional and the leverage it makes of the account's
    equity (|notional| ÷ equity: what a trader calls the position's effective leverage)."""
    notional = float(size) * mark
    detail = {**detail, "mark_px": mark, "notional_usd": notional,
              "effective_leverage": abs(notional) / equity_usd if equity_usd > 0 else None}
    return PositionView(
        asset=coin, asset_address=f"{venue}:{coin}", decimals=SIZE_DECIMALS, side="perp",
        amount_raw=int(size.scaleb(SIZE_DECIMALS).to_integral_value()), amount=float(size), price_usd=mark,
        value_usd=notional, is_collateral=False, market_key=f"{venue}:{coin}", extra=detail,
    )


def _implied_marks(szi: npt.ArrayLike, position_value_usd: npt.ArrayLike) -> list[float]:
    """The marks ``hyperliquid_health`` values positions at: ``positionValue / |szi|`` (as floats)."""
    size = np.abs(np.asarray(szi, dtype=np.float64))
    value = np.asarray(position_value_usd, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [float(x) for x in np.where(size != 0, value / np.where(size != 0, size, 1.0), 0.0)]


def _health(
    wallet: str, venue: str, health: PerpHealth, check: VenueCheck, positions: Sequence[PositionView],
    inputs: Mapping[str, float],
) -> VenueHealth:
    equity = float(np.sum(health.equity_usd))
    maintenance = float(np.sum(health.maintenance_usd))
    finite = [h for h in health.health if math.isfinite(h)]
    hf = min(finite) if finite and maintenance > 0 else None
    liq = {label: _finite(float(px)) for label, px in zip(health.position_labels, health.liquidation_px, strict=True)}
    flags = [] if check.ok else ["venue_disagreement"]
    if health.any_liquidatable:
        flags.append("liquidatable")
    return VenueHealth(
        wallet=wallet, venue=venue, kind="perp", health_factor=hf, health_factor_raw=None,
        onchain_health_factor_raw=None, matches_onchain=check.ok, collateral_usd=equity, debt_usd=0.0,
        liquidation_threshold=None, positions=tuple(positions), flags=tuple(flags),
        extra={
            "equity_usd": equity,
            "maintenance_margin_usd": maintenance,
            "liquidation_price": liq,
            "discrepancies": [str(d) for d in check.discrepancies],
            **inputs,
        },
    )


def evaluate_hyperliquid(snapshot: HyperliquidSnapshot, venue: str, block: BlockRef) -> VenueReading:
    """Every wallet's Hyperliquid margin health, checked against the venue's own reported figures."""
    healths = []
    for account in snapshot.accounts:
        fig = HyperliquidFigures(**snapshot.health_inputs(account.wallet))
        health = hyperliquid_health(fig)
        liq = dict(zip(health.position_labels, health.liquidation_px, strict=True))
        marks = _implied_marks(fig.szi, fig.position_value_usd)
        equity = float(np.sum(health.equity_usd))
        positions = [
            _position(venue, p.coin, p.szi, float(p.mark_px), {
                "entry_px": str(p.entry_px), "leverage": p.leverage.value, "cross": p.is_cross,
                "unrealized_pnl_usd": str(p.unrealized_pnl_usd), "margin_used_usd": str(p.margin_used_usd),
                "venue_liquidation_px": str(p.liquidation_px) if p.liquidation_px is not None else None,
                "liquidation_px": _finite(float(liq.get(p.coin, math.nan))),
                # What the margin rule ran on (a what-if reruns it at another mark): the exact size, the mark
                # implied by the reported position value, the tier table, an isolated position's own cash.
                "szi": str(p.szi), "mark_usd": marks[i],
                "tier_lower_usd": [float(x) for x in fig.tier_lower_usd[i] if math.isfinite(x)],
                "tier_max_leverage": [float(x) for x in fig.tier_max_leverage[i] if math.isfinite(x)],
                "isolated_raw_usd": None if p.is_cross else float(fig.isolated_raw_usd[i]),
            }, equity)
            for i, p in enumerate(account.positions)
        ]
        healths.append(_health(account.wallet, venue, health, check_hyperliquid(fig), positions,
                               {"cross_raw_usd": fig.cross_raw_usd}))
    return VenueReading(venue=venue, kind="perp", block=block, healths=tuple(healths),
                        venue_time_ms=snapshot.observed_at_ms)


def evaluate_dydx(
    snapshot: DydxSnapshot, venue: str, block: BlockRef, wallets_by_account: Mapping[str, str]
) -> VenueReading:
    """Every mapped wallet's dYdX subaccount health, checked against the indexer's equity and free collateral.

    ``wallets_by_account`` maps ``dydx1…`` addresses back to the EVM wallets xmargin tracks.
    """
    healths = []
    for sub in snapshot.accounts:
        fig = DydxFigures(**snapshot.health_inputs(sub.account_id))
        health = dydx_health(fig)
        liq = dict(zip(health.position_labels, health.liquidation_px, strict=True))
        equity = float(np.sum(health.equity_usd))
        positions = [
            _position(venue, p.market, p.size if p.side == "LONG" else -abs(p.size),
                      float(oracle), {
                          "entry_px": str(p.entry_price_usd), "side": p.side,
                          "unrealized_pnl_usd": str(p.unrealized_pnl_usd), "account": sub.account_id,
                          "liquidation_px": _finite(float(liq.get(p.market, math.nan))),
                          # What the margin rule ran on (a what-if reruns it at another oracle price).
                          "size": float(fig.size[i]), "mark_usd": float(oracle),
                          "maintenance_margin_fraction": float(fig.maintenance_margin_fraction[i]),
                          "initial_margin_fraction": float(fig.initial_margin_fraction[i]),
                      }, equity)
            for i, (p, oracle) in enumerate(zip(sub.positions, fig.oracle_usd, strict=True))
        ]
        wallet = wallets_by_account.get(sub.address, sub.address)
        healths.append(_health(wallet, venue, health, check_dydx(fig), positions, {"usdc_usd": fig.usdc_usd}))
    return VenueReading(venue=venue, kind="perp", block=block, healths=tuple(healths),
                        venue_time_ms=snapshot.observed_at_ms)

