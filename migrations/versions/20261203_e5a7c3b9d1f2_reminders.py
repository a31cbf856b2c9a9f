"""reminders: when a conversation's current step's reminder is due

Revision ID: e5a7c3b9d1f2
Revises: d9e1f4a2b6c8
Create Date: 2026-12-03 07:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5a7c3b9d1f2"
down_revision: str | None = "d9e1f4a2b6c8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE_ONLY = sa.text("remind_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("conversation_state") as batch:
        batch.add_column(sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_conversation_state_remind_at",
        "conversation_state",
        ["remind_at"],
        postgresql_where=DUE_ONLY,
        sqlite_where=DUE_ONLY,
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_state_remind_at", table_name="conversation_state")
    with op.batch_alter_table("conversation_state") as batch:
        batch.drop_column("remind_at")
