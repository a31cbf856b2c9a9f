"""handoffs and events out: customers handed to a person, and the events' own outbox

Self-contained: it creates its two tables and touches no other.

Revision ID: d9e1f4a2b6c8
Revises: 7bd50c6e7c8d
Create Date: 2026-12-03 06:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d9e1f4a2b6c8"
down_revision: str | None = "7bd50c6e7c8d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN_ONLY = sa.text("released_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_key", sa.String(length=160), nullable=False),
        sa.Column("phone_number", sa.String(length=32), nullable=True),
        sa.Column("user_id", sa.String(length=160), nullable=True),
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("template_name", sa.String(length=64), nullable=True),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("waiting", sa.Integer(), nullable=False),
        sa.Column("last_message", sa.Text(), nullable=True),
        sa.Column("last_customer_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_person_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_reason", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    op.create_index(
        "uq_handoffs_user_key_open",
        "handoffs",
        ["user_key"],
        unique=True,
        postgresql_where=OPEN_ONLY,
        sqlite_where=OPEN_ONLY,
    )
    op.create_index("ix_handoffs_released_at_requested_at", "handoffs", ["released_at", "requested_at"])
    op.create_table(
        "outgoing_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outgoing_events_event_id")),
    )
    op.create_index("ix_outgoing_events_status_next_attempt_at", "outgoing_events", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outgoing_events_status_next_attempt_at", table_name="outgoing_events")
    op.drop_table("outgoing_events")
    op.drop_index("ix_handoffs_released_at_requested_at", table_name="handoffs")
    op.drop_index("uq_handoffs_user_key_open", table_name="handoffs")
    op.drop_table("handoffs")
