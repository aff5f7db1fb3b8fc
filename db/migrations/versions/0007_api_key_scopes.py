"""API keys get a scope (read, write or admin); keys made before scopes existed could write, so they are ``write``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPES = ("read", "write", "admin")


def upgrade() -> None:
    # Two steps: the default fills the existing rows, then goes (a new key always names its scope).
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=8), server_default="write", nullable=False))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scope", existing_type=sa.String(length=8), server_default=None, existing_nullable=False)
        batch.create_check_constraint(op.f("ck_api_keys_scope"),
                                      "scope IN (" + ", ".join(repr(s) for s in SCOPES) + ")")


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f("ck_api_keys_scope"), type_="check")
        batch.drop_column("scope")
