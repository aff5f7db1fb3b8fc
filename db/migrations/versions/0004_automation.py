"""Automation: alert rules with their firing state, alerts with their delivery state, keeper plans and their
signed transactions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", _id(), nullable=False),
        sa.Column("wallet_id", _id(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("params", _json(), nullable=False),
        sa.Column("hysteresis", sa.Double(), nullable=False),
        sa.Column("cooldown_s", sa.Double(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("episode", _id(), nullable=False),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("last_block", _id(), nullable=True),
        sa.Column("last_fired_at", _ts(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            _one_of("kind", ("venue_health_below", "unified_health_below", "move_to_liquidation_below",
                             "oracle_invalid", "price_cross")),
            name=op.f("ck_alert_rules_kind"),
        ),
        sa.CheckConstraint(_one_of("severity", ("info", "warning", "critical")), name=op.f("ck_alert_rules_severity")),
        _fk("alert_rules", "wallet_id", "wallets"),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
    )
    op.create_index("ix_alert_rules_wallet_id", "alert_rules", ["wallet_id"])
    op.create_table(
        "keeper_plans",
        sa.Column("id", _id(), nullable=False),
        sa.Column("plan_key", sa.String(length=66), nullable=False),
        sa.Column("wallet_id", _id(), nullable=False),
        sa.Column("chain_id", _id(), nullable=False),
        sa.Column("block_number", _id(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("execute", sa.Boolean(), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=True),
        sa.Column("usd_total", sa.Double(), nullable=False),
        sa.Column("plan", _json(), nullable=False),
        sa.Column("simulation", _json(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            _one_of("status", ("planned", "infeasible", "refused", "simulated", "simulation_failed", "executing",
                               "executed", "failed")),
            name=op.f("ck_keeper_plans_status"),
        ),
        _fk("keeper_plans", "wallet_id", "wallets"),
        sa.PrimaryKeyConstraint("id", name="pk_keeper_plans"),
        sa.UniqueConstraint("plan_key", name="uq_keeper_plans_plan_key"),
    )
    op.create_index("ix_keeper_plans_status", "keeper_plans", ["status"])
    op.create_index("ix_keeper_plans_wallet_id_created_at", "keeper_plans", ["wallet_id", "created_at"])
    op.create_table(
        "alerts",
        sa.Column("id", _id(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("rule_id", _id(), nullable=False),
        sa.Column("wallet_id", _id(), nullable=False),
        sa.Column("episode", _id(), nullable=False),
        sa.Column("fired_at", _ts(), nullable=False),
        sa.Column("chain_id", _id(), nullable=True),
        sa.Column("block_number", _id(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.CheckConstraint(_one_of("state", ("fired", "delivered", "failed")), name=op.f("ck_alerts_state")),
        _fk("alerts", "rule_id", "alert_rules"),
        _fk("alerts", "wallet_id", "wallets"),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("event_id", name="uq_alerts_event_id"),
    )
    op.create_index("ix_alerts_state", "alerts", ["state"])
    op.create_index("ix_alerts_wallet_id_fired_at", "alerts", ["wallet_id", "fired_at"])
    op.create_table(
        "keeper_txs",
        sa.Column("id", _id(), nullable=False),
        sa.Column("plan_id", _id(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("nonce", _id(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("block_number", _id(), nullable=True),
        sa.Column("gas_used", _id(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint(_one_of("status", ("signed", "sent", "confirmed", "reverted", "dropped")),
                           name=op.f("ck_keeper_txs_status")),
        _fk("keeper_txs", "plan_id", "keeper_plans"),
        sa.PrimaryKeyConstraint("id", name="pk_keeper_txs"),
        sa.UniqueConstraint("plan_id", "seq", name="uq_keeper_txs_plan_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("keeper_txs")
    op.drop_index("ix_alerts_wallet_id_fired_at", table_name="alerts")
    op.drop_index("ix_alerts_state", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_keeper_plans_wallet_id_created_at", table_name="keeper_plans")
    op.drop_index("ix_keeper_plans_status", table_name="keeper_plans")
    op.drop_table("keeper_plans")
    op.drop_index("ix_alert_rules_wallet_id", table_name="alert_rules")
    op.drop_table("alert_rules")
