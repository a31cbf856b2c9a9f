"""inbound kinds: what an edit or deletion is about, marketing opt-out, Meta's template statuses

Revision ID: f4b8d2c6a1e9
Revises: e3a7c1b9d5f2
Create Date: 2026-12-03 08:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f4b8d2c6a1e9"
down_revision: str | None = "e3a7c1b9d5f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("inbound_messages", sa.Column("refers_to", sa.String(length=256), nullable=True))
    op.create_index(op.f("ix_inbound_messages_refers_to"), "inbound_messages", ["refers_to"])
    op.add_column("contacts", sa.Column("marketing_opted_out_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "message_template_statuses",
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("template_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("quality", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "language"),
    )


def downgrade() -> None:
    op.drop_table("message_template_statuses")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("marketing_opted_out_at")
    op.drop_index(op.f("ix_inbound_messages_refers_to"), table_name="inbound_messages")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("refers_to")
