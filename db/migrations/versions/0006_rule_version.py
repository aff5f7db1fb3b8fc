"""Alert rules get a version: edits bump it, and an evaluation stores its result only onto the version it read.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_rules") as batch:
        batch.add_column(sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                   server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("alert_rules") as batch:
        batch.drop_column("version")
