"""A change-only store: position snapshots become versions that hold for a range of blocks, health and risk become
series of changes, and a risk result is unique per (chain identity, wallet, block).

- ``position_snapshots`` gets ``valid_to_block`` (the version's last block, inclusive; ``NULL`` while it is the
  newest version) and ``last_seen_block`` (the newest block read with the same content).
- ``health_results`` gets ``block_timestamp``; its ``snapshot_id`` is no longer unique (several health rows of one
  version), ``(snapshot_id, block_number)`` is.
- ``risk_results`` gets ``chain_ref_id`` (from its sync run) and is unique per ``(chain_ref_id, wallet_id,
  block_number)``: of several results of one block, the newest (the one every query already answered) is kept.

Existing rows are converted without loss: runs of consecutive snapshots of one (wallet, venue, chain) with the same
status, error and positions (every column equal) collapse into the first, whose range then covers them; their
health rows are kept (pointed at that version, with their own block's timestamp), so every history point stays.
A snapshot without a health row is never folded into the one before it (its history point is the snapshot).

Downgrading expands the versions back into one snapshot per health row (the positions copied), then drops the
columns.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 00:30:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POSITION_COLUMNS = ("market_id", "asset_id", "side", "amount_raw", "amount", "price_usd", "value_usd",
                     "is_collateral", "extra")


def _bigint() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _norm(value: Any) -> Any:
    """A position column's value in one comparable form on both backends (JSON as sorted text, numbers exact)."""
    if isinstance(value, Decimal):
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    return value


def _chunks(items: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def upgrade() -> None:
    with op.batch_alter_table("position_snapshots") as batch:
        batch.add_column(sa.Column("valid_to_block", _bigint(), nullable=True))
        batch.add_column(sa.Column("last_seen_block", _bigint(), nullable=True))
    with op.batch_alter_table("health_results") as batch:
        batch.add_column(sa.Column("block_timestamp", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("risk_results") as batch:
        batch.add_column(sa.Column("chain_ref_id", _bigint(), nullable=True))
        batch.create_foreign_key("fk_risk_results_chain_ref_id_chains", "chains", ["chain_ref_id"], ["id"])

    op.execute(sa.text("UPDATE position_snapshots SET last_seen_block = block_number"))
    op.execute(sa.text(
        "UPDATE health_results SET block_timestamp = "
        "(SELECT s.block_timestamp FROM position_snapshots s WHERE s.id = health_results.snapshot_id)"))
    op.execute(sa.text(
        "UPDATE risk_results SET chain_ref_id = (SELECT r.chain_ref_id FROM sync_runs r "
        "WHERE r.id = risk_results.sync_run_id)"))
    op.execute(sa.text(  # of several results of one block, the newest stays (the one the queries answered)
        "DELETE FROM risk_results WHERE EXISTS (SELECT 1 FROM risk_results k WHERE k.wallet_id = "
        "risk_results.wallet_id AND k.block_number = risk_results.block_number AND k.chain_ref_id = "
        "risk_results.chain_ref_id AND k.id > risk_results.id)"))

    with op.batch_alter_table("health_results") as batch:
        batch.drop_constraint("uq_health_results_snapshot_id", type_="unique")
    _collapse_versions(op.get_bind())
    with op.batch_alter_table("health_results") as batch:
        batch.create_unique_constraint("uq_health_results_snapshot_id_block_number", ["snapshot_id", "block_number"])
    with op.batch_alter_table("risk_results") as batch:
        batch.create_unique_constraint("uq_risk_results_chain_ref_id_wallet_id_block_number",
                                       ["chain_ref_id", "wallet_id", "block_number"])


def _collapse_versions(conn: sa.Connection) -> None:
    snaps = conn.execute(sa.text(
        "SELECT s.id, s.wallet_id, s.venue_id, s.chain_ref_id, s.block_number, s.status, s.error, "
        "(SELECT count(*) FROM health_results h WHERE h.snapshot_id = s.id) AS n_health "
        "FROM position_snapshots s ORDER BY s.wallet_id, s.venue_id, s.chain_ref_id, s.block_number")).all()
    if not snaps:
        return
    contents: dict[int, list[tuple[Any, ...]]] = {}
    cols = ", ".join(_POSITION_COLUMNS)
    for r in conn.execute(sa.text(f"SELECT snapshot_id, {cols} FROM positions ORDER BY id")):  # noqa: S608
        contents.setdefault(r[0], []).append(tuple(_norm(v) for v in r[1:]))

    folded: list[tuple[int, int]] = []  # (snapshot folded away, the version it joins)
    ranges: list[dict[str, Any]] = []
    head: Any = None
    previous: Any = None
    for s in snaps:
        key = (s.wallet_id, s.venue_id, s.chain_ref_id)
        same_key = previous is not None and (previous.wallet_id, previous.venue_id, previous.chain_ref_id) == key
        same = (same_key and head is not None and s.n_health > 0 and s.status == head.status
                and s.error == head.error and contents.get(s.id, []) == contents.get(head.id, []))
        if same:
            folded.append((s.id, head.id))
            ranges[-1]["last_seen"] = s.block_number
        else:
            if same_key:
                ranges[-1]["valid_to"] = s.block_number - 1
            head = s
            ranges.append({"_id": s.id, "valid_to": None, "last_seen": s.block_number})
        previous = s
    if folded:
        conn.execute(sa.text("UPDATE health_results SET snapshot_id = :head WHERE snapshot_id = :gone"),
                     [{"head": h, "gone": g} for g, h in folded])
        gone = [g for g, _ in folded]
        for chunk in _chunks(gone):
            ids = ", ".join(str(int(i)) for i in chunk)
            conn.execute(sa.text(f"DELETE FROM positions WHERE snapshot_id IN ({ids})"))  # noqa: S608 (ints)
            conn.execute(sa.text(f"DELETE FROM position_snapshots WHERE id IN ({ids})"))  # noqa: S608 (ints)
    conn.execute(sa.text("UPDATE position_snapshots SET valid_to_block = :valid_to, last_seen_block = :last_seen "
                         "WHERE id = :_id"), ranges)


def downgrade() -> None:
    _expand_versions(op.get_bind())
    with op.batch_alter_table("risk_results") as batch:
        batch.drop_constraint("uq_risk_results_chain_ref_id_wallet_id_block_number", type_="unique")
        batch.drop_constraint("fk_risk_results_chain_ref_id_chains", type_="foreignkey")
        batch.drop_column("chain_ref_id")
    with op.batch_alter_table("health_results") as batch:
        batch.drop_constraint("uq_health_results_snapshot_id_block_number", type_="unique")
        batch.create_unique_constraint("uq_health_results_snapshot_id", ["snapshot_id"])
        batch.drop_column("block_timestamp")
    with op.batch_alter_table("position_snapshots") as batch:
        batch.drop_column("last_seen_block")
        batch.drop_column("valid_to_block")


def _expand_versions(conn: sa.Connection) -> None:
    """One snapshot per health row again: each health row past its version's first block gets a copy of the
    version (at its own block, in the sync run of that block when there is one), with the positions copied."""
    rows = conn.execute(sa.text(
        "SELECT h.id AS h_id, h.block_number AS h_block, h.block_timestamp AS h_ts, s.* "
        "FROM health_results h JOIN position_snapshots s ON s.id = h.snapshot_id "
        "WHERE h.block_number <> s.block_number ORDER BY h.id")).mappings().all()
    cols = ", ".join(_POSITION_COLUMNS)
    for r in rows:
        run = conn.execute(sa.text(
            "SELECT id, block_hash FROM sync_runs WHERE chain_ref_id = :c AND block_number = :b AND status <> 'failed' "
            "ORDER BY id DESC LIMIT 1"), {"c": r["chain_ref_id"], "b": r["h_block"]}).first()
        new_id = conn.execute(sa.text("SELECT COALESCE(MAX(id), 0) + 1 FROM position_snapshots")).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO position_snapshots (id, sync_run_id, wallet_id, venue_id, chain_ref_id, chain_id, "
            "block_number, block_hash, block_timestamp, taken_at, venue_timestamp, status, error) "
            "VALUES (:id, :run, :w, :v, :c, :chain, :b, :hash, :ts, :taken, :vts, :status, :error)"),
            {"id": new_id, "run": run[0] if run else r["sync_run_id"], "w": r["wallet_id"], "v": r["venue_id"],
             "c": r["chain_ref_id"], "chain": r["chain_id"], "b": r["h_block"],
             "hash": run[1] if run else r["block_hash"], "ts": r["h_ts"] or r["block_timestamp"],
             "taken": r["taken_at"], "vts": r["venue_timestamp"], "status": r["status"], "error": r["error"]},
        )
        conn.execute(sa.text(f"INSERT INTO positions (snapshot_id, {cols}) SELECT :new, {cols} FROM positions "  # noqa: S608
                             "WHERE snapshot_id = :old ORDER BY id"), {"new": new_id, "old": r["id"]})
        conn.execute(sa.text("UPDATE health_results SET snapshot_id = :new WHERE id = :h"),
                     {"new": new_id, "h": r["h_id"]})
    if rows and conn.dialect.name == "postgresql":  # ids were given explicitly: the sequence follows them
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('position_snapshots', 'id'), "
                             "(SELECT MAX(id) FROM position_snapshots))"))
