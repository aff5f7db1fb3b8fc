"""Plain row types: what goes into the store and what comes back out.

These are frozen dataclasses, not ORM objects, so the writer stays a handful of Core bulk inserts and
``db`` depends on nothing above it (not ``connectors``, ``riskcore`` or ``aggregator``): the aggregator
converts its boundary models into these.

References are by natural key, never by database id: a wallet by address, a venue by name, an asset by
``(chain_id, address)``, a market by ``(venue, key)``. The store resolves the ids; assets and markets that it
has not seen yet are created, while wallets and venues must already exist (:meth:`db.Store.add_wallets`,
:meth:`db.Store.upsert_venues`).

Units follow the project's naming: ``*_raw`` are exact on-chain integers (``int``, up to 2**256-1, signed for
Chainlink answers), ``*_usd`` are floats in US dollars, ``*_bps`` are basis points (1e4 = 100 %), ``*_s`` are
seconds. Every datetime is timezone-aware (UTC on the way out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "OFFCHAIN_CHAIN_ID",
    "AssetRow",
    "ChainRow",
    "ChainSyncStatus",
    "HealthPoint",
    "HealthRow",
    "LatestVenueHealth",
    "MarketRow",
    "PositionRow",
    "PositionSide",
    "PriceRow",
    "RiskRow",
    "SnapshotRow",
    "SnapshotStatus",
    "SyncBatch",
    "SyncStatus",
    "VenueKind",
    "VenueRow",
    "WalletRow",
]


OFFCHAIN_CHAIN_ID = 0
"""The chain id under which off-chain instruments are stored."""


class VenueKind(StrEnum):
    """What a venue is; stored as its string value."""

    LENDING = "lending"
    LP = "lp"
    PERP = "perp"


class SyncStatus(StrEnum):
    """Outcome of one sync run (all wallets, one block per chain)."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"


class SnapshotStatus(StrEnum):
    """Outcome of reading one wallet on one venue."""

    OK = "ok"
    ERROR = "error"


class PositionSide(StrEnum):
    """Which side of the book a position sits on."""

    COLLATERAL = "collateral"
    DEBT = "debt"
    SUPPLY = "supply"
    LP = "lp"
    PERP = "perp"


@dataclass(frozen=True, slots=True)
class WalletRow:
    """A tracked wallet. ``address`` is EIP-55 checksummed."""

    id: int
    address: str
    label: str | None
    created_at: datetime
    active: bool
    ens_name: str | None = None
    """The ENS name the wallet was added by (normalised), if any."""


@dataclass(frozen=True, slots=True)
class VenueRow:
    """A venue deployment, e.g. a lending market on chain 1. ``chain_id`` is ``None`` for off-chain venues."""

    name: str
    kind: VenueKind
    chain_id: int | None = None
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AssetRow:
    """A token on one chain. ``decimals`` scales its ``*_raw`` amounts (amount = raw / 10**decimals).

    Off-chain instruments (a perp market of an exchange) use ``chain_id`` :data:`OFFCHAIN_CHAIN_ID` and a
    ``venue:SYMBOL`` key as ``address`` (e.g. ``<venue>:ETH``)."""

    chain_id: int
    address: str
    symbol: str
    decimals: int


@dataclass(frozen=True, slots=True)
class MarketRow:
    """One market of a venue: ``key`` is the reserve asset address or the venue's market id.

    ``params`` holds the venue's risk parameters as plain JSON (e.g. ``ltv_bps``,
    ``liquidation_threshold_bps``); raw integers beyond 2**53 should be given as decimal strings.
    """

    venue: str
    key: str
    name: str
    asset: AssetRow | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PositionRow:
    """One position of a snapshot. ``amount_raw`` is the exact integer (asset units × 10**decimals).

    ``market_key`` names a market of the snapshot's venue (created with empty params when unknown);
    ``amount`` is ``amount_raw`` scaled by the asset's decimals, as a float, for queries and display.
    """

    asset: AssetRow
    side: PositionSide
    amount_raw: int
    amount: float
    price_usd: float | None = None
    value_usd: float | None = None
    is_collateral: bool = False
    market_key: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    state: str | None = None
    """The wallet's own state behind the position as its venue declares it (what only the wallet's actions change:
    a scaled balance, shares, an LP's liquidity and range, a perp's size). While it holds, the store keeps one
    version and writes the position's later values (interest, prices) into the health series; ``None``: any
    change of the raw amount, the extra or (beyond the tolerance) the values starts a new version."""


@dataclass(frozen=True, slots=True)
class PriceRow:
    """One price observation: ``price_raw`` / 10**``decimals`` = ``price_usd`` (USD per whole token).

    ``updated_at`` is the source's own timestamp (e.g. Chainlink ``updatedAt``), ``age_s`` the age at the
    pinned block, ``flags`` any of ``stale``/``zero``/``negative``. ``price_raw`` may be negative (Chainlink
    ``int256`` answers).
    """

    asset: AssetRow
    block_number: int
    source: str
    price_raw: int
    decimals: int
    price_usd: float
    observed_at: datetime
    source_address: str | None = None
    updated_at: datetime | None = None
    age_s: float | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HealthRow:
    """One venue's health for one snapshot.

    ``health_factor`` is ``None`` when there is no debt. ``health_factor_raw`` is our own integer (WAD, 1e18 =
    1.0), ``onchain_health_factor_raw`` the venue's own integer; ``matches_onchain`` compares the two (``None``
    when the venue exposes none). ``liquidation_threshold`` is a fraction (0.825 = 82.5 %).
    """

    computed_at: datetime
    collateral_usd: float
    debt_usd: float
    health_factor: float | None = None
    health_factor_raw: int | None = None
    onchain_health_factor_raw: int | None = None
    liquidation_threshold: float | None = None
    matches_onchain: bool | None = None
    flags: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Venue-specific figures as plain JSON (perps: ``equity_usd``, ``maintenance_margin_usd``…)."""


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """Everything read for one wallet on one venue at one block: its positions and, if computed, its health."""

    wallet: str
    venue: str
    chain_id: int
    block_number: int
    block_hash: str
    block_timestamp: datetime
    taken_at: datetime
    venue_timestamp: datetime | None = None
    """Off-chain venues: the venue's own time of the data (the block is the chain's at the read)."""
    status: SnapshotStatus = SnapshotStatus.OK
    error: str | None = None
    positions: tuple[PositionRow, ...] = ()
    health: HealthRow | None = None


@dataclass(frozen=True, slots=True)
class RiskRow:
    """The netting engine's view of one wallet across venues at the batch's block.

    ``unified_health`` is equity / portfolio margin (``None``: no margin needed); ``document`` is the full
    ``xmargin risk --json`` document as plain JSON.
    """

    wallet: str
    block_number: int
    computed_at: datetime
    unified_health: float | None
    equity_usd: float
    margin_usd: float
    netting_benefit_usd: float
    document: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SyncBatch:
    """One sync run, written by :meth:`db.Store.write_sync` in a single transaction.

    ``markets`` are upserted (their params updated) before positions refer to them by key; ``prices`` are the
    observations of this run. ``block_*`` is the block the run was pinned to (``None`` only for runs that
    failed before choosing one).
    """

    chain_id: int
    started_at: datetime
    status: SyncStatus
    block_number: int | None = None
    block_hash: str | None = None
    block_timestamp: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    snapshots: tuple[SnapshotRow, ...] = ()
    prices: tuple[PriceRow, ...] = ()
    markets: tuple[MarketRow, ...] = ()
    risks: tuple[RiskRow, ...] = ()
    """The netting engine's results for the batch's wallets, written in the same transaction."""
    chain_ref_id: int | None = None
    """The chain identity read (:meth:`db.Store.current_chain`); ``None``: the current identity of ``chain_id``
    (an unverified one is created when there is none)."""
    confirmed_venues: tuple[str, ...] = ()
    """Venues whose every tracked wallet the sync went through cleanly at this block, written or not (a block-driven
    sync writes only the wallets that moved): their open versions are served as of this block."""


@dataclass(frozen=True, slots=True)
class LatestVenueHealth:
    """The newest snapshot of one wallet on one venue, with its positions, health and the prices of its run.

    In the change-only store the snapshot is the newest position *version*, as of its newest block read or the
    newer block its chain's sync confirmed without writing (:attr:`as_of_block`); ``sync_run_id`` and ``prices``
    are those of the newest block read.

    When the newest read of the venue failed, ``snapshot`` is the newest good one (its values are the last known)
    and ``failed`` is the failed read (status ``error``, with its error and time); when no good read exists,
    ``snapshot`` is the failed one and ``failed`` is ``None``.
    """

    venue: str
    sync_run_id: int
    snapshot_id: int
    snapshot: SnapshotRow
    prices: tuple[PriceRow, ...]
    failed: SnapshotRow | None = None
    chain_ref_id: int | None = None
    as_of_block: int | None = None
    """The newest block these positions and health are known to hold through: the newest block read with them, or,
    for an open good version of a tracked wallet, a newer block the chain's sync went through and confirmed with
    nothing to write for it (block mode writes only what moved: :meth:`db.Store.confirm_block`).
    ``snapshot.block_number``, and the block hash and time, are this block's; ``health`` is the newest health row
    at or before it."""
    valid_from_block: int | None = None
    """The first block of the position version (the block that first read these positions)."""

    @property
    def health(self) -> HealthRow | None:
        """The snapshot's health, ``None`` for an error snapshot."""
        return self.snapshot.health


@dataclass(frozen=True, slots=True)
class HealthPoint:
    """One point of a wallet's health history on one venue."""

    venue: str
    block_number: int
    block_timestamp: datetime
    snapshot_id: int
    status: SnapshotStatus
    error: str | None
    health: HealthRow | None


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One chain identity: a chain id and genesis hash behind a configured chain name, with the newest block
    stored from it. ``retired_at`` is set when the chain behind the name changed; a retired chain's rows are
    kept but never served as current."""

    id: int
    name: str | None
    chain_id: int
    genesis_hash: str | None
    created_at: datetime
    first_block: int | None = None
    last_block: int | None = None
    last_block_hash: str | None = None
    last_block_timestamp: datetime | None = None
    last_synced_at: datetime | None = None
    retired_at: datetime | None = None
    retired_reason: str | None = None

    @property
    def verified(self) -> bool:
        """Whether the identity was checked against a node (its genesis hash is known)."""
        return self.genesis_hash is not None


@dataclass(frozen=True, slots=True)
class ChainSyncStatus:
    """How syncing a chain has gone: the newest good sync of its current identity and the newest attempt.

    ``failing_since`` is the start of the first failed attempt after the newest good sync (``None`` when the
    newest attempt did not fail); ``last_error`` is the newest failed attempt's error.
    """

    chain: ChainRow
    last_ok_at: datetime | None
    last_ok_block: int | None
    last_ok_block_timestamp: datetime | None
    last_attempt_at: datetime | None
    last_attempt_status: SyncStatus | None
    last_error: str | None
    failing_since: datetime | None
