"""What one sync produces for one wallet on one venue, in the application's own terms.

These are the values written to the store and shown by ``xmargin health``; venue adapters
(``aggregator.venues``) build them from the connectors' snapshots and the risk core's results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from connectors.types import BlockRef

__all__ = ["PositionView", "PriceView", "VenueHealth", "VenueReading"]

Side = Literal["collateral", "debt", "supply", "lp", "perp"]
Kind = Literal["lending", "lp", "perp"]


@dataclass(frozen=True, slots=True)
class PositionView:
    """One balance of a wallet on a venue, with its raw integer and its USD value at the block."""

    asset: str
    """Symbol, e.g. ``WETH``."""
    asset_address: str
    decimals: int
    side: Side
    amount_raw: int
    amount: float
    price_usd: float
    value_usd: float
    is_collateral: bool
    market_key: str
    """The venue's key for the market (a lending reserve: its asset address)."""
    extra: dict[str, object] = field(default_factory=dict)
    """Venue-specific detail as plain JSON (LP: range, fees, delta/gamma; perp: entry, liquidation price…)."""
    state: str | None = None
    """The wallet's own state behind the position, as the venue holds it: what only the wallet's actions change (a
    scaled balance and its flags, shares, an LP's liquidity and range, a perp's size and entry), never what the
    block's market moves (indexes, prices, accrued interest). The store keeps one version of the positions while
    every state holds (``db.rows.PositionRow.state``); ``None``: the venue declares none."""

    @property
    def onchain(self) -> bool:
        """A token on the reading's chain (off-chain instruments are keyed ``<venue>:<SYMBOL>``)."""
        return self.asset_address.startswith("0x")


@dataclass(frozen=True, slots=True)
class PriceView:
    """A price observed at the block, with its source and its age."""

    chain_id: int
    asset: str
    asset_address: str
    decimals: int
    source: str
    """``<venue>.oracle`` for the venue's own oracle."""
    source_address: str
    price_raw: int
    price_decimals: int
    price_usd: float
    updated_at: int | None
    """The source's own update time (unix seconds), when it says."""
    age_s: int | None
    """Seconds between ``updated_at`` and the block's timestamp."""
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VenueHealth:
    """A wallet's health on one venue at one block, computed by the risk core from decoded balances."""

    wallet: str
    venue: str
    kind: Kind
    health_factor: float | None
    """None when there is no debt."""
    health_factor_raw: int | None
    """Our own integer, in the venue's format (WAD for a lending health factor); None when there is no debt."""
    onchain_health_factor_raw: int | None
    """The venue's own figure read in the same block (e.g. the pool's own account-data call), None if it has none."""
    matches_onchain: bool | None
    collateral_usd: float
    debt_usd: float
    liquidation_threshold: float | None
    """The threshold in force (weighted average over collateral), a fraction; None without collateral."""
    positions: tuple[PositionView, ...]
    flags: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)
    """Venue-specific figures (perps: ``equity_usd``, ``maintenance_margin_usd``, ``liquidation_price``)."""


@dataclass(frozen=True, slots=True)
class VenueReading:
    """Everything one venue yielded for a batch of wallets at one block, or the reason it did not."""

    venue: str
    kind: Kind
    block: BlockRef
    healths: tuple[VenueHealth, ...] = ()
    prices: tuple[PriceView, ...] = ()
    error: str | None = None
    venue_time_ms: int | None = None
    """Off-chain venues: the venue's own time of the data (unix ms)."""
    markets: dict[str, dict[str, object]] = field(default_factory=dict)
    """Per market key: its parameters (for the store's ``markets`` table)."""
