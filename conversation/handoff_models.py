"""Models of people in the loop: customers handed to a person, and the events sent out.

They share ``conversation.models.Base`` (and so its naming convention and metadata); the
migration that creates them is ``handoffs_and_events``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from conversation.models import Base, BigId, UTCDateTime, utcnow

OPEN_ONLY = text("released_at IS NULL")


class Handoff(Base):
    """A customer handed to a person: open (the bot is paused for them) until ``released_at``.

    Rows are kept after release as the record of who was helped when. At most one open
    handoff per customer, enforced by a partial unique index.
    """

    __tablename__ = "handoffs"
    __table_args__ = (
        Index(
            "uq_handoffs_user_key_open",
            "user_key",
            unique=True,
            postgresql_where=OPEN_ONLY,
            sqlite_where=OPEN_ONLY,
        ),
        Index("ix_handoffs_released_at_requested_at", "released_at", "requested_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(160))
    phone_number: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(160))
    # The business number the customer wrote to: a person's replies go out from it.
    phone_number_id: Mapped[str] = mapped_column(String(64))
    # Where it happened: the flow and its handoff step, or None for the global handoff word.
    template_name: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Customer messages since the person last wrote (or since the handoff).
    waiting: Mapped[int] = mapped_column(Integer, default=0)
    last_message: Mapped[str | None] = mapped_column(Text)
    last_customer_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_person_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # person | timeout | opt_out
    release_reason: Mapped[str | None] = mapped_column(String(16))


class OutgoingEvent(Base):
    """An event owed to ``PARLEY_EVENTS_URL``: the events' own outbox.

    ``body`` holds the exact bytes that are signed and POSTed, so every attempt sends the
    same body under the same ``event_id`` and the receiver can drop a repeat.
    """

    __tablename__ = "outgoing_events"
    __table_args__ = (Index("ix_outgoing_events_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    # pending | delivered
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Due when this is past; while an attempt is in flight it is the attempt's lease.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
