"""Typed boundary models of the Hyperliquid connector.

Hyperliquid prints every amount as a decimal string; here each one is an exact :class:`~decimal.Decimal`
(``*_usd`` in USD/USDC, ``*_px`` prices in USD, sizes in base units). Floats appear only in
:meth:`HyperliquidSnapshot.health_inputs`, the riskcore-facing view. Each account and asset keeps its raw
payload beside the parsed one (``raw``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import numpy as np

from connectors.errors import InvalidInputError
from connectors.types import Address, Frozen, checksum

__all__ = [
    "HyperliquidAccount",
    "HyperliquidAsset",
    "HyperliquidCumFunding",
    "HyperliquidLeverage",
    "HyperliquidMarginSummary",
    "HyperliquidMarginTier",
    "HyperliquidMarket",
    "HyperliquidPosition",
    "HyperliquidSnapshot",
    "TimeSource",
]

TimeSource = Literal["venue", "http_date", "local_clock"]
"""Where a snapshot's time comes from: the venue's ``time`` field, the HTTP ``Date`` header, or (neither
being there) this machine's clock."""


class HyperliquidMarginTier(Frozen):
    """One tier of a margin table: from ``lower_bound_usd`` of notional up, at most ``max_leverage``."""

    lower_bound_usd: Decimal
    max_leverage: int


class HyperliquidAsset(Frozen):
    """One perpetual of ``meta.universe`` with its context (``assetCtxs[index]``) and resolved margin tiers."""

    index: int
    """Asset id: the position in the universe."""
    name: str
    sz_decimals: int
    max_leverage: int
    margin_table_id: int | None
    only_isolated: bool
    is_delisted: bool
    margin_tiers: tuple[HyperliquidMarginTier, ...]
    """The table named by ``marginTableId`` (ids below 50: one tier at that leverage); one tier at
    ``maxLeverage`` when the universe entry names none."""
    mark_px: Decimal | None
    oracle_px: Decimal | None
    mid_px: Decimal | None
    funding: Decimal | None
    open_interest: Decimal | None
    raw_meta: dict[str, Any]
    raw_ctx: dict[str, Any]


class HyperliquidMarket(Frozen):
    """``metaAndAssetCtxs``: every perpetual, its mark and oracle prices and margin tiers."""

    assets: tuple[HyperliquidAsset, ...]
    observed_at_ms: int
    observed_at_source: TimeSource

    def asset(self, coin: str) -> HyperliquidAsset | None:
        for a in self.assets:
            if a.name == coin:
                return a
        return None


class HyperliquidLeverage(Frozen):
    """A position's leverage setting; ``raw_usd`` is the isolated margin's raw USD (isolated positions)."""

    type: Literal["cross", "isolated"]
    value: int
    raw_usd: Decimal | None = None


class HyperliquidCumFunding(Frozen):
    """Cumulative funding of a position (positive: paid by the position)."""

    all_time_usd: Decimal
    since_open_usd: Decimal
    since_change_usd: Decimal


class HyperliquidPosition(Frozen):
    """One ``assetPositions[].position``."""

    coin: str
    szi: Decimal
    """Signed size, base units (< 0 short)."""
    entry_px: Decimal
    position_value_usd: Decimal
    """``|szi| × mark``."""
    unrealized_pnl_usd: Decimal
    return_on_equity: Decimal | None
    leverage: HyperliquidLeverage
    liquidation_px: Decimal | None
    """Null at the venue when no price liquidates the position."""
    margin_used_usd: Decimal
    max_leverage: int
    cum_funding: HyperliquidCumFunding | None
    raw: dict[str, Any]

    @property
    def is_cross(self) -> bool:
        return self.leverage.type == "cross"

    @property
    def mark_px(self) -> Decimal:
        """The mark the venue valued the position at: ``positionValue / |szi|``."""
        return self.position_value_usd / abs(self.szi) if self.szi else Decimal(0)


class HyperliquidMarginSummary(Frozen):
    """``marginSummary`` (all positions) or ``crossMarginSummary`` (cross only)."""

    account_value_usd: Decimal
    total_ntl_pos_usd: Decimal
    total_raw_usd: Decimal
    total_margin_used_usd: Decimal


class HyperliquidAccount(Frozen):
    """One wallet's ``clearinghouseState`` (an unused wallet: zeros and no positions)."""

    wallet: Address
    margin_summary: HyperliquidMarginSummary
    cross_margin_summary: HyperliquidMarginSummary
    cross_maintenance_margin_used_usd: Decimal
    withdrawable_usd: Decimal
    positions: tuple[HyperliquidPosition, ...]
    time_ms: int | None
    """The venue's own ``time`` field (unix ms), when present."""
    observed_at_ms: int
    observed_at_source: TimeSource
    raw: dict[str, Any]

    @property
    def account_value_usd(self) -> Decimal:
        return self.margin_summary.account_value_usd

    @property
    def total_notional_usd(self) -> Decimal:
        return self.margin_summary.total_ntl_pos_usd


class HyperliquidSnapshot(Frozen):
    """Markets and many wallets' accounts, read together; ``observed_at_ms`` is the oldest of their times."""

    venue: Literal["hyperliquid"] = "hyperliquid"
    market: HyperliquidMarket
    accounts: tuple[HyperliquidAccount, ...]
    observed_at_ms: int
    observed_at_source: TimeSource

    def account(self, wallet: str) -> HyperliquidAccount:
        want = checksum(wallet)
        for acct in self.accounts:
            if acct.wallet == want:
                return acct
        raise InvalidInputError(f"wallet {want} is not in this snapshot")

    def health_inputs(self, wallet: str | HyperliquidAccount) -> dict[str, Any]:
        """The keyword arguments of ``riskcore.venues.hyperliquid.health.HyperliquidFigures`` for ``wallet`` (its
        address, or one of the snapshot's accounts: no search, for a loop over every account).

        Decimals become floats here (and only here). Tier tables are padded to a common width with
        ``+inf`` lower bounds (and ``nan`` leverage).
        """
        acct = wallet if isinstance(wallet, HyperliquidAccount) else self.account(wallet)
        pos = acct.positions
        tiers = [self._tiers(p) for p in pos]
        width = max((len(t) for t in tiers), default=1)
        lower = np.full((len(pos), width), np.inf)
        lev = np.full((len(pos), width), np.nan)
        for i, t in enumerate(tiers):
            for j, tier in enumerate(t):
                lower[i, j] = float(tier.lower_bound_usd)
                lev[i, j] = float(tier.max_leverage)
        lower[:, 0] = 0.0

        def arr(values: list[Decimal | None]) -> np.ndarray[Any, np.dtype[np.float64]]:
            return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

        return {
            "wallet": acct.wallet,
            "coin": tuple(p.coin for p in pos),
            "szi": arr([p.szi for p in pos]),
            "position_value_usd": arr([p.position_value_usd for p in pos]),
            "entry_px": arr([p.entry_px for p in pos]),
            "is_cross": np.array([p.is_cross for p in pos], dtype=bool),
            "isolated_raw_usd": arr([None if p.is_cross else p.leverage.raw_usd for p in pos]),
            "tier_lower_usd": lower,
            "tier_max_leverage": lev,
            "cross_raw_usd": float(acct.cross_margin_summary.total_raw_usd),
            "reported_cross_account_value_usd": float(acct.cross_margin_summary.account_value_usd),
            "reported_cross_maintenance_usd": float(acct.cross_maintenance_margin_used_usd),
            "reported_liquidation_px": arr([p.liquidation_px for p in pos]),
            "reported_margin_used_usd": arr([p.margin_used_usd for p in pos]),
            "reported_unrealized_pnl_usd": arr([p.unrealized_pnl_usd for p in pos]),
        }

    def _tiers(self, position: HyperliquidPosition) -> tuple[HyperliquidMarginTier, ...]:
        asset = self.market.asset(position.coin)
        if asset is not None and asset.margin_tiers:
            return asset.margin_tiers
        return (HyperliquidMarginTier(lower_bound_usd=Decimal(0), max_leverage=position.max_leverage),)
