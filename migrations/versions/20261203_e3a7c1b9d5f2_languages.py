"""languages: the customer's language on their conversation, their contact and their submissions

Nullable columns only (an unknown language is the deployment's default), so existing rows
need no backfill and the upgrade does not rewrite any table.

Revision ID: e3a7c1b9d5f2
Revises: e5a7c3b9d1f2
Create Date: 2026-12-03 07:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3a7c1b9d5f2"
down_revision: str | None = "e5a7c3b9d1f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("conversation_state", "contacts", "submissions")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("language")
