"""The xmargin store: schema, migrations and the :class:`Store` that reads and writes it.

``db`` depends on SQLAlchemy, Alembic and psycopg only, never on ``connectors``, ``riskcore`` or
``aggregator``: it speaks its own plain row types (:mod:`db.rows`), which the aggregator fills in.

Backends: PostgreSQL 15+ (``postgresql+psycopg://``) and SQLite 3.35+ (the default, a file under
``$XMARGIN_HOME``). Raw on-chain integers are stored exactly on both (see :class:`db.models.UInt256`).
"""

from db.apikeys import ApiKeyRow, DuplicateNameError
from db.automation import AlertRow, NewAlert, NewTx, PlanRow, RuleRow, RuleUpdate, TxRow
from db.chains import StoredBlock
from db.changes import ChangePolicy, CompactStats, RetentionPolicy, WriteStats
from db.errors import InvalidAddressError, StoreError, SyncWriteError, UnknownReferenceError
from db.migrate import upgrade
from db.rows import (
    AssetRow,
    ChainRow,
    ChainSyncStatus,
    HealthPoint,
    HealthRow,
    LatestVenueHealth,
    MarketRow,
    PositionRow,
    PositionSide,
    PriceRow,
    RiskRow,
    SnapshotRow,
    SnapshotStatus,
    SyncBatch,
    SyncStatus,
    VenueKind,
    VenueRow,
    WalletRow,
)
from db.store import Store, canonical_address

__all__ = [
    "AlertRow",
    "ApiKeyRow",
    "AssetRow",
    "ChainRow",
    "ChainSyncStatus",
    "ChangePolicy",
    "CompactStats",
    "DuplicateNameError",
    "HealthPoint",
    "HealthRow",
    "InvalidAddressError",
    "LatestVenueHealth",
    "MarketRow",
    "NewAlert",
    "NewTx",
    "PlanRow",
    "PositionRow",
    "PositionSide",
    "PriceRow",
    "RetentionPolicy",
    "RiskRow",
    "RuleRow",
    "RuleUpdate",
    "SnapshotRow",
    "SnapshotStatus",
    "Store",
    "StoreError",
    "StoredBlock",
    "SyncBatch",
    "SyncStatus",
    "SyncWriteError",
    "TxRow",
    "UnknownReferenceError",
    "VenueKind",
    "VenueRow",
    "WalletRow",
    "WriteStats",
    "canonical_address",
    "upgrade",
]
