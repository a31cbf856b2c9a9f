"""notifications: customer windows, opt-out, notification rows in the outbox

- ``customer_windows``: when each customer last wrote to each business number (the 24-hour
  customer service window);
- ``contacts.opted_out_at``: the customer opted out of notifications;
- ``outbound_messages.origin`` and ``.idempotency_key``: a notification is an outbox row;
  its key is unique (a partial index: replies carry none), so the same request twice, even
  at the same instant, names one row.

Revision ID: 7bd50c6e7c8d
Revises: c4d2e8a1f7b3
Create Date: 2026-12-03 06:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7bd50c6e7c8d"
down_revision: str | None = "c4d2e8a1f7b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_INDEX = "ix_outbound_messages_idempotency_key"
HAS_KEY = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "customer_windows",
        sa.Column("user_key", sa.String(length=160), nullable=False),
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_key", "phone_number_id", name=op.f("pk_customer_windows")),
    )
    op.add_column("contacts", sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True))
    # A constant default: Postgres adds the column without rewriting the table.
    op.add_column(
        "outbound_messages",
        sa.Column("origin", sa.String(length=16), server_default="reply", nullable=False),
    )
    op.add_column("outbound_messages", sa.Column("idempotency_key", sa.String(length=200), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # Concurrently: the outbox keeps taking replies while the index is built.
        with op.get_context().autocommit_block():
            op.create_index(
                KEY_INDEX,
                "outbound_messages",
                ["idempotency_key"],
                unique=True,
                postgresql_where=HAS_KEY,
                postgresql_concurrently=True,
            )
    else:
        op.create_index(KEY_INDEX, "outbound_messages", ["idempotency_key"], unique=True, sqlite_where=HAS_KEY)


def downgrade() -> None:
    op.drop_index(KEY_INDEX, table_name="outbound_messages")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("idempotency_key")
        batch.drop_column("origin")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("opted_out_at")
    op.drop_table("customer_windows")
