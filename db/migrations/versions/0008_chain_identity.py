"""Chain identities: which chain every sync run and snapshot was read from.

A ``chains`` row is one chain behind a configured name (chain id + genesis hash, and the newest block stored from
it); sync runs and snapshots point at it, and a snapshot is unique per (wallet, venue, chain, block) — two chains
that share a chain id (a reset devnet, a fork) can both hold block 256 without one overwriting the other.

Existing rows are kept: every chain id found in ``sync_runs`` becomes one *unverified* identity (genesis hash
``NULL``), current; the first sync after the upgrade checks it against the node and adopts it when the stored
blocks are still on the node's chain, or retires it (kept apart, never served as current) when they are not.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _bigint() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chains",
        sa.Column("id", _bigint(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=True),
        sa.Column("chain_id", _bigint(), nullable=False),
        sa.Column("genesis_hash", sa.String(66), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("first_block", _bigint(), nullable=True),
        sa.Column("last_block", _bigint(), nullable=True),
        sa.Column("last_block_hash", sa.String(66), nullable=True),
        sa.Column("last_block_timestamp", _ts(), nullable=True),
        sa.Column("last_synced_at", _ts(), nullable=True),
        sa.Column("retired_at", _ts(), nullable=True),
        sa.Column("retired_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_chains"),
    )
    op.create_index("uq_chains_current_chain_id", "chains", ["chain_id"], unique=True,
                    sqlite_where=sa.text("retired_at IS NULL"), postgresql_where=sa.text("retired_at IS NULL"))

    # One unverified identity per chain id already in the store, holding all of its rows.
    op.execute(sa.text(
        "INSERT INTO chains (chain_id, created_at, first_block, last_block, last_synced_at) "
        "SELECT chain_id, MIN(started_at), MIN(block_number), MAX(block_number), MAX(finished_at) "
        "FROM sync_runs GROUP BY chain_id"
    ))
    op.execute(sa.text(
        "UPDATE chains SET last_block_hash = (SELECT r.block_hash FROM sync_runs r WHERE r.chain_id = chains.chain_id "
        "AND r.block_number = chains.last_block ORDER BY r.id DESC LIMIT 1), "
        "last_block_timestamp = (SELECT r.block_timestamp FROM sync_runs r WHERE r.chain_id = chains.chain_id "
        "AND r.block_number = chains.last_block ORDER BY r.id DESC LIMIT 1)"
    ))

    # (On SQLite the batch operations rebuild the tables; db.migrate runs migrations with foreign keys off, so the
    # rebuild's DROP does not cascade to the rows that reference them.)
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("chain_ref_id", _bigint(), nullable=True))
        batch.create_foreign_key("fk_sync_runs_chain_ref_id_chains", "chains", ["chain_ref_id"], ["id"])
        batch.create_index("ix_sync_runs_chain_ref_id", ["chain_ref_id"])
    op.execute(sa.text(
        "UPDATE sync_runs SET chain_ref_id = (SELECT c.id FROM chains c WHERE c.chain_id = sync_runs.chain_id)"
    ))
    with op.batch_alter_table("position_snapshots") as batch:
        batch.add_column(sa.Column("chain_ref_id", _bigint(), nullable=True))
    op.execute(sa.text(
        "UPDATE position_snapshots SET chain_ref_id = "
        "(SELECT r.chain_ref_id FROM sync_runs r WHERE r.id = position_snapshots.sync_run_id)"
    ))
    with op.batch_alter_table("position_snapshots") as batch:
        batch.alter_column("chain_ref_id", existing_type=_bigint(), nullable=False)
        batch.create_foreign_key("fk_position_snapshots_chain_ref_id_chains", "chains", ["chain_ref_id"], ["id"])
        batch.drop_constraint("uq_position_snapshots_wallet_id_venue_id_block_number", type_="unique")
        batch.create_unique_constraint("uq_position_snapshots_wallet_venue_chain_block",
                                       ["wallet_id", "venue_id", "chain_ref_id", "block_number"])


def downgrade() -> None:
    # Only one chain per (wallet, venue, block) fits the old unique constraint: retired chains' snapshots go.
    retired = ("(SELECT s.id FROM position_snapshots s JOIN chains c ON c.id = s.chain_ref_id "
               "WHERE c.retired_at IS NOT NULL)")
    for table, column in (("positions", "snapshot_id"), ("health_results", "snapshot_id"),
                          ("position_snapshots", "id")):
        op.execute(sa.text(f"DELETE FROM {table} WHERE {column} IN {retired}"))  # noqa: S608 (fixed names)
    with op.batch_alter_table("position_snapshots") as batch:
        batch.drop_constraint("uq_position_snapshots_wallet_venue_chain_block", type_="unique")
        batch.create_unique_constraint("uq_position_snapshots_wallet_id_venue_id_block_number",
                                       ["wallet_id", "venue_id", "block_number"])
        batch.drop_constraint("fk_position_snapshots_chain_ref_id_chains", type_="foreignkey")
        batch.drop_column("chain_ref_id")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_index("ix_sync_runs_chain_ref_id")
        batch.drop_constraint("fk_sync_runs_chain_ref_id_chains", type_="foreignkey")
        batch.drop_column("chain_ref_id")
    op.drop_index("uq_chains_current_chain_id", table_name="chains")
    op.drop_table("chains")
