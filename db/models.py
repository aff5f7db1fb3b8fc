"""The schema: SQLAlchemy 2.0 declarative models, and the two column types the project needs.

``UInt256`` keeps raw on-chain integers exact: NUMERIC(78, 0) on PostgreSQL (78 digits hold 2**256-1 and
-2**255), a decimal TEXT on SQLite (whose NUMERIC affinity would turn big values into floats). Values come back
as ``int``; no float ever touches them. On SQLite the TEXT column cannot be compared or summed numerically in
SQL: the store never does.

``UTCDateTime`` refuses naive datetimes, stores UTC (TIMESTAMP WITH TIME ZONE on PostgreSQL, the fixed-width
ISO text SQLAlchemy uses on SQLite, which sorts chronologically) and returns aware UTC datetimes.

The migration in ``db/migrations/versions`` creates exactly these tables; ``tests/db`` checks that with
alembic's ``compare_metadata``. Change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "ADDRESS_LEN",
    "API_KEY_SCOPES",
    "HASH_LEN",
    "UINT256_MAX",
    "Alert",
    "AlertRule",
    "Asset",
    "Base",
    "Chain",
    "HealthResult",
    "Id",
    "JsonType",
    "KeeperPlan",
    "KeeperTx",
    "Market",
    "Position",
    "PositionSnapshot",
    "Price",
    "RawInt",
    "SyncRun",
    "UInt256",
    "UTCDateTime",
    "Venue",
    "Wallet",
]

UINT256_MAX = 2**256 - 1
INT256_MIN = -(2**255)
ADDRESS_LEN = 42  # "0x" + 40 hex digits
HASH_LEN = 66  # "0x" + 64 hex digits


class UInt256(TypeDecorator[int]):
    """An exact integer in [-2**255, 2**256-1]: NUMERIC(78,0) on PostgreSQL, decimal TEXT elsewhere."""

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"UInt256 wants an int, got {type(value).__name__}")
        if not INT256_MIN <= value <= UINT256_MAX:
            raise ValueError(f"integer out of the uint256/int256 range: {value}")
        if dialect.name == "postgresql":
            return Decimal(value)
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return int(value)
        return int(str(value))


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored and returned in UTC; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime (want timezone-aware): {value!r}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


RawInt = Annotated[int, "uint256"]
"""An exact on-chain integer column (``UInt256``)."""

Id = Annotated[int, "id"]
"""A surrogate key: BIGINT (BIGSERIAL) on PostgreSQL, INTEGER (the rowid) on SQLite."""

JsonType = JSON().with_variant(JSONB(), "postgresql")
_BigInt = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base: one naming convention, and Python types mapped to column types in one place."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (read by SQLAlchemy at class creation)
        Id: _BigInt,
        RawInt: UInt256(),
        int: _BigInt,
        float: Double(),
        bool: Boolean(),
        str: Text(),
        datetime: UTCDateTime(),
        dict[str, Any]: JsonType,
        list[str]: JsonType,
    }


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


_KINDS = ("lending", "lp", "perp")
_SYNC_STATUSES = ("ok", "partial", "failed")
_SNAPSHOT_STATUSES = ("ok", "error")
_SIDES = ("collateral", "debt", "supply", "lp", "perp")


class Wallet(Base):
    __tablename__ = "wallets"

    id: Mapped[Id] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(ADDRESS_LEN), unique=True)
    label: Mapped[str | None]
    created_at: Mapped[datetime]
    active: Mapped[bool]
    ens_name: Mapped[str | None] = mapped_column(String(255))


class Venue(Base):
    __tablename__ = "venues"
    __table_args__ = (CheckConstraint(_one_of("kind", _KINDS), name="kind"),)

    id: Mapped[Id] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    chain_id: Mapped[int | None]
    config: Mapped[dict[str, Any]]


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("chain_id", "address"),)

    id: Mapped[Id] = mapped_column(primary_key=True)
    chain_id: Mapped[int]
    address: Mapped[str] = mapped_column(String(ADDRESS_LEN))
    symbol: Mapped[str] = mapped_column(String(64))
    decimals: Mapped[int] = mapped_column(SmallInteger)


class Market(Base):
    __tablename__ = "markets"
    __table_args__ = (UniqueConstraint("venue_id", "key"),)

    id: Mapped[Id] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id"))
    key: Mapped[str] = mapped_column(String(128))
    name: Mapped[str]
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id"))
    params: Mapped[dict[str, Any]]


class Chain(Base):
    """The identity of the chain behind a configured chain name: its chain id and genesis hash, and the newest
    block stored from it. When the chain behind a name changes (a devnet reset, a new fork, an RPC pointed
    elsewhere) the old identity is *retired* and a new one begins: rows stay tied to the identity they were read
    from, so the old chain's data is never served as current nor mixed into a history. At most one identity per
    chain id is current (``retired_at IS NULL``)."""

    __tablename__ = "chains"
    __table_args__ = (
        Index("uq_chains_current_chain_id", "chain_id", unique=True,
              sqlite_where=text("retired_at IS NULL"), postgresql_where=text("retired_at IS NULL")),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(64))
    """The configured chain name that last synced it (``None``: recorded before chain identities existed)."""
    chain_id: Mapped[int]
    genesis_hash: Mapped[str | None] = mapped_column(String(HASH_LEN))
    """Hash of block 0; ``None`` until verified against a node (rows migrated from an older store)."""
    created_at: Mapped[datetime]
    first_block: Mapped[int | None]
    last_block: Mapped[int | None]
    """The highest block stored from this chain, with its hash and timestamp."""
    last_block_hash: Mapped[str | None] = mapped_column(String(HASH_LEN))
    last_block_timestamp: Mapped[datetime | None]
    last_synced_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
    retired_reason: Mapped[str | None]
    purges: Mapped[int] = mapped_column(server_default="0")
    """How many times blocks of this identity were purged as reorganised (a store's memory of its writes is
    dropped when this moves: ``db.Store.write_cache_size``)."""


class VenueConfirmation(Base):
    """The newest block at which a good sync went through every tracked wallet of a venue on a chain identity: the
    venue's open versions hold through it as stored. A block-driven sync writes only the wallets that moved and
    confirms the rest here (:meth:`db.Store.confirm_block`), so the served "as of" block moves on without a row per
    wallet; a venue that failed at a block, or is no longer synced, is not confirmed."""

    __tablename__ = "venue_confirmations"

    chain_ref_id: Mapped[int] = mapped_column(ForeignKey("chains.id", ondelete="CASCADE"), primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), primary_key=True)
    block_number: Mapped[int]
    block_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    block_timestamp: Mapped[datetime]
    confirmed_at: Mapped[datetime]


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        CheckConstraint(_one_of("status", _SYNC_STATUSES), name="status"),
        Index(None, "chain_id", "block_number"),
        Index(None, "chain_ref_id"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    chain_id: Mapped[int]
    block_number: Mapped[int | None]
    block_hash: Mapped[str | None] = mapped_column(String(HASH_LEN))
    block_timestamp: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    wallets: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None]
    chain_ref_id: Mapped[int | None] = mapped_column(ForeignKey("chains.id"))
    """The chain identity read (``None`` for a run that failed before the chain could be identified)."""


class PositionSnapshot(Base):
    __tablename__ = "position_snapshots"
    __table_args__ = (
        # Also serves "newest snapshot per (wallet, venue)" and history by wallet+venue.
        UniqueConstraint("wallet_id", "venue_id", "chain_ref_id", "block_number",
                         name="uq_position_snapshots_wallet_venue_chain_block"),
        CheckConstraint(_one_of("status", _SNAPSHOT_STATUSES), name="status"),
        Index(None, "wallet_id", "block_number"),
        Index(None, "sync_run_id"),
        Index(None, "venue_id"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    sync_run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id"))
    chain_ref_id: Mapped[int] = mapped_column(ForeignKey("chains.id"))
    """The chain identity of the snapshot's sync run (kept here for the uniqueness of a block per chain)."""
    chain_id: Mapped[int]
    block_number: Mapped[int]
    block_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    block_timestamp: Mapped[datetime]
    taken_at: Mapped[datetime]
    venue_timestamp: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None]
    valid_to_block: Mapped[int | None]
    """A snapshot is a *version*: the wallet's positions on the venue from ``block_number`` (the block that read
    them first) to ``valid_to_block`` inclusive; ``None`` while it is the newest version (open-ended)."""
    last_seen_block: Mapped[int | None]
    """The newest block read with this same content (the version's "as of"); ``None`` only in rows the writer has
    not touched (read as ``block_number``)."""
    health_base: Mapped[dict[str, Any] | None]
    """The ``extra`` of the version's first health row: its health rows store their ``extra`` as the changes from
    it (:mod:`db.jsondelta`). ``None``: they store it whole (versions written before migration 0014)."""


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (
        CheckConstraint(_one_of("side", _SIDES), name="side"),
        Index(None, "snapshot_id"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("position_snapshots.id", ondelete="CASCADE"))
    market_id: Mapped[int | None] = mapped_column(ForeignKey("markets.id"))
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"))
    side: Mapped[str] = mapped_column(String(16))
    amount_raw: Mapped[RawInt]
    amount: Mapped[float]
    price_usd: Mapped[float | None]
    value_usd: Mapped[float | None]
    is_collateral: Mapped[bool]
    extra: Mapped[dict[str, Any]]
    state: Mapped[str | None]
    """The wallet's own state behind the position as its venue declares it (what only the wallet's actions change:
    a scaled balance, shares, an LP's liquidity and range, a perp's size): while it holds, the version holds, and the
    position's valuations at later blocks (interest, prices) live in the health series (``position_values``).
    ``None``: the venue declares none, and any change of the raw amount or the values starts a new version."""


class Price(Base):
    __tablename__ = "prices"
    __table_args__ = (
        Index(None, "sync_run_id"),
        Index(None, "asset_id", "block_number"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    sync_run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"))
    chain_id: Mapped[int]
    block_number: Mapped[int]
    source: Mapped[str] = mapped_column(String(64))
    source_address: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    price_raw: Mapped[RawInt]
    decimals: Mapped[int] = mapped_column(SmallInteger)
    price_usd: Mapped[float]
    updated_at: Mapped[datetime | None]
    age_s: Mapped[float | None]
    flags: Mapped[list[str]]
    observed_at: Mapped[datetime]


class HealthResult(Base):
    """A venue's health as a compact series of changes: a row is written when a value moved by more than the
    store's tolerance, or the last one is too old (:class:`db.store.ChangePolicy`). ``snapshot_id`` is the position
    version whose range holds ``block_number``."""

    __tablename__ = "health_results"
    __table_args__ = (
        Index(None, "wallet_id", "venue_id", "block_number"),
        UniqueConstraint("snapshot_id", "block_number"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("position_snapshots.id", ondelete="CASCADE"))
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id"))
    block_number: Mapped[int]
    computed_at: Mapped[datetime]
    health_factor: Mapped[float | None]
    health_factor_raw: Mapped[RawInt | None]
    onchain_health_factor_raw: Mapped[RawInt | None]
    collateral_usd: Mapped[float]
    debt_usd: Mapped[float]
    liquidation_threshold: Mapped[float | None]
    matches_onchain: Mapped[bool | None]
    flags: Mapped[list[str]]
    extra: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    block_timestamp: Mapped[datetime | None]
    """The timestamp of ``block_number`` (the version's own block timestamp is its first block's)."""
    position_values: Mapped[dict[str, Any] | None]
    """The version's positions valued at ``block_number`` where they differ from the version's own: by position
    id, ``[amount_raw as text, amount, price_usd, value_usd, {the extra keys that moved}]``. ``None``: the
    version's own values hold."""


class RiskResult(Base):
    """The netting engine's view of one wallet across venues, written when it changed (a series of changes), at
    most once per (chain identity, wallet, block)."""

    __tablename__ = "risk_results"
    __table_args__ = (
        Index(None, "wallet_id", "block_number"),
        UniqueConstraint("chain_ref_id", "wallet_id", "block_number"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    sync_run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    block_number: Mapped[int]
    computed_at: Mapped[datetime]
    unified_health: Mapped[float | None]
    equity_usd: Mapped[float]
    margin_usd: Mapped[float]
    netting_benefit_usd: Mapped[float]
    document: Mapped[dict[str, Any]]
    chain_ref_id: Mapped[int | None] = mapped_column(ForeignKey("chains.id"))
    """The chain identity of the sync run that computed it."""


# -- automation: alert rules, alerts, keeper plans ---------------------------------------------------------

RULE_KINDS = ("venue_health_below", "unified_health_below", "move_to_liquidation_below", "oracle_invalid",
              "price_cross")
ALERT_STATES = ("fired", "delivered", "failed")
SEVERITIES = ("info", "warning", "critical")
PLAN_STATUSES = ("planned", "infeasible", "refused", "simulated", "simulation_failed", "executing", "executed",
                 "failed")
TX_STATUSES = ("signed", "sent", "confirmed", "reverted", "dropped")


class AlertRule(Base):
    """A rule watched after every sync, with its firing state (hysteresis, cooldown, episode count)."""

    __tablename__ = "alert_rules"
    __table_args__ = (
        CheckConstraint(_one_of("kind", RULE_KINDS), name="kind"),
        CheckConstraint(_one_of("severity", SEVERITIES), name="severity"),
        Index(None, "wallet_id"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]]
    hysteresis: Mapped[float]
    cooldown_s: Mapped[float]
    severity: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool]
    created_at: Mapped[datetime]
    active: Mapped[bool]
    """The condition holds (an episode is open)."""
    episode: Mapped[int]
    """Episodes opened so far; an alert's event is (rule, episode)."""
    last_value: Mapped[float | None]
    last_block: Mapped[int | None]
    last_fired_at: Mapped[datetime | None]
    deleted: Mapped[bool]
    version: Mapped[int] = mapped_column(server_default="0")
    """Bumped by every edit: an evaluation made from an older version stores nothing (compare-and-set)."""


class Alert(Base):
    """One firing of a rule: the event, and its delivery state. ``event_id`` is unique: an event is stored,
    and sent, once."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_one_of("state", ALERT_STATES), name="state"),
        Index(None, "wallet_id", "fired_at"),
        Index(None, "state"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id"))
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    episode: Mapped[int]
    fired_at: Mapped[datetime]
    chain_id: Mapped[int | None]
    block_number: Mapped[int | None]
    value: Mapped[float | None]
    threshold: Mapped[float | None]
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str]
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None]
    delivered_at: Mapped[datetime | None]


class KeeperPlan(Base):
    """A rebalance plan for one wallet at one block, and where it got to. ``plan_key`` is unique: the same
    plan is never stored, or executed, twice."""

    __tablename__ = "keeper_plans"
    __table_args__ = (
        CheckConstraint(_one_of("status", PLAN_STATUSES), name="status"),
        Index(None, "wallet_id", "created_at"),
        Index(None, "status"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    plan_key: Mapped[str] = mapped_column(String(66), unique=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    chain_id: Mapped[int]
    block_number: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(24))
    execute: Mapped[bool]
    """False: a dry run (planned and simulated, never sent)."""
    signer: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    usd_total: Mapped[float]
    plan: Mapped[dict[str, Any]]
    simulation: Mapped[dict[str, Any] | None]
    error: Mapped[str | None]
    last_seen_block: Mapped[int | None]
    """The newest block at which the keeper came to this same plan again (a standing dry run or refusal is one
    row, seen again block after block, not one row per block). Filled on insert; ``block_number`` is the first."""
    last_seen_at: Mapped[datetime | None]
    seen_count: Mapped[int] = mapped_column(server_default="1")
    """How many keeper cycles came to this plan."""


class KeeperTx(Base):
    """One transaction of a plan, stored signed *before* it is broadcast, so a restart re-sends the same
    bytes (same nonce, same hash) instead of building a new transaction."""

    __tablename__ = "keeper_txs"
    __table_args__ = (
        UniqueConstraint("plan_id", "seq"),
        CheckConstraint(_one_of("status", TX_STATUSES), name="status"),
    )

    id: Mapped[Id] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("keeper_plans.id"))
    seq: Mapped[int] = mapped_column(Integer)
    description: Mapped[str]
    to_address: Mapped[str] = mapped_column(String(ADDRESS_LEN))
    nonce: Mapped[int]
    tx_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    raw_tx: Mapped[str]
    status: Mapped[str] = mapped_column(String(16))
    block_number: Mapped[int | None]
    gas_used: Mapped[int | None]
    updated_at: Mapped[datetime]


API_KEY_SCOPES = ("read", "write", "admin")
"""What an API key may do, each covering the ones before it: ``read`` (every GET), ``write`` (wallets and alert
rules), ``admin`` (API keys)."""


class ApiKey(Base):
    """An HTTP API key: only its SHA-256 is stored (the key itself is shown once, when created); ``prefix`` —
    the key's first characters — names it in listings and logs; ``scope`` is one of :data:`API_KEY_SCOPES`
    (keys made before scopes existed are ``write``: they could write)."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_one_of("scope", API_KEY_SCOPES), name="scope"),)

    id: Mapped[Id] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    scope: Mapped[str] = mapped_column(String(8))
