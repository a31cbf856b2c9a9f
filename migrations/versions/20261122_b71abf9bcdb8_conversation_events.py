"""conversation events: where customers entered and left each flow (drop-off stats)

Revision ID: b71abf9bcdb8
Revises: 69f8f3a76b1e
Create Date: 2026-11-22 03:54:18.838512
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b71abf9bcdb8"
down_revision: str | None = "69f8f3a76b1e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversation_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_key", sa.String(length=160), nullable=False),
        sa.Column("template_name", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_events")),
    )
    op.create_index(
        "ix_conversation_events_template_name_created_at",
        "conversation_events",
        ["template_name", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_conversation_events_template_name_user_key_id",
        "conversation_events",
        ["template_name", "user_key", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_events_template_name_user_key_id", table_name="conversation_events")
    op.drop_index("ix_conversation_events_template_name_created_at", table_name="conversation_events")
    op.drop_table("conversation_events")
