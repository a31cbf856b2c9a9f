"""SQLAlchemy 2.0 models: templates, live conversations, message logs, the outbox.

Postgres gets its native types (UUID, JSONB, TEXT[]); SQLite falls back to JSON so the
same models and migrations run on the embedded default database.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Explicit constraint names so Alembic migrations are stable across databases.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
TextArray = JSON().with_variant(ARRAY(Text()), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC everywhere; SQLite stores naive values, so re-attach UTC on load."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; parley stores timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class WorkflowTemplate(Base):
    __tablename__ = "workflow_templates"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    template_name: Mapped[str] = mapped_column(String(64), unique=True)
    template_type: Mapped[str] = mapped_column(String(16))
    trigger_keywords: Mapped[list[str]] = mapped_column(TextArray, default=list)
    menu_structure: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Everything of the flow file besides the seed's columns (priority, expiry, ...).
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class TemplateRevision(Base):
    """One row whose ``revision`` changes (by trigger) with every write to ``workflow_templates``.

    Workers compare it per message, one primary-key read, instead of scanning the table.
    The trigger, its sequence and the row are created by migration c4d2e8a1f7b3.
    """

    __tablename__ = "template_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


class ConversationState(Base):
    """A customer's live conversation. At most one per user, enforced by ``user_key``."""

    __tablename__ = "conversation_state"
    __table_args__ = (
        Index("ix_conversation_state_expires_at", "expires_at"),
        # The reminder sweep's only question; most conversations wait for no reminder.
        Index(
            "ix_conversation_state_remind_at",
            "remind_at",
            postgresql_where=text("remind_at IS NOT NULL"),
            sqlite_where=text("remind_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # BSUID when known, else the phone number: the identity a conversation belongs to.
    user_key: Mapped[str] = mapped_column(String(160), unique=True)
    phone_number: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(160))
    conversation_flow: Mapped[str] = mapped_column(String(64))
    current_step: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    last_interaction: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the current step's reminder is due (its remind_after); None: none is, or it went.
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The customer's language in this conversation (a code like pt_BR); None: the default.
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Contact(Base):
    """What parley knows of a customer beyond one conversation.

    Its row is also the per-user lock: inbound processing upserts it first, which holds
    the row lock until commit, so two workers never interleave one user's messages; the
    sender's lease keeps one user's replies in order across sender processes.
    """

    __tablename__ = "contacts"

    user_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    phone_number: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(160))
    profile_name: Mapped[str | None] = mapped_column(String(256))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_fallback_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sender_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    send_not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pair_limit_hits: Mapped[int] = mapped_column(Integer, default=0)
    # Set by an opt-out word, cleared by an opt-in word (conversation/consent.py).
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set and cleared by the customer's "Stop promotions" / resume in WhatsApp (user_preferences).
    marketing_opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The language of their last conversation: a fallback without one speaks it.
    language: Mapped[str | None] = mapped_column(String(16))


class InboundMessage(Base):
    """Every inbound WhatsApp message, once: ``wamid`` is the dedupe key."""

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    wamid: Mapped[str] = mapped_column(String(256), unique=True)
    user_key: Mapped[str] = mapped_column(String(160), index=True)
    phone_number_id: Mapped[str | None] = mapped_column(String(64))
    message_type: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The customer's own message an edit or a deletion is about (reactions: our message).
    refers_to: Mapped[str | None] = mapped_column(String(256), index=True)
    # handled | ignored | failed
    outcome: Mapped[str] = mapped_column(String(16), default="handled")
    error: Mapped[str | None] = mapped_column(Text)


class OutboundMessage(Base):
    """A reply parley owes a customer: the outbox row, then its delivery record."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index("ix_outbound_messages_user_key_status", "user_key", "status"),
        Index("ix_outbound_messages_status_updated_at", "status", "updated_at"),
        # Only notifications carry a key: replies, most rows, stay out of the index.
        Index(
            "ix_outbound_messages_idempotency_key",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(160))
    phone_number_id: Mapped[str] = mapped_column(String(64))
    to_phone: Mapped[str | None] = mapped_column(String(32))
    to_user_id: Mapped[str | None] = mapped_column(String(160))
    # message | mark_read
    kind: Mapped[str] = mapped_column(String(16), default="message")
    # WhatsApp content: {"type": "text", "text": {...}} or {"type": "interactive", ...}
    content: Mapped[dict[str, Any]] = mapped_column(JSONType)
    inbound_wamid: Mapped[str | None] = mapped_column(String(256))
    # pending | sending | accepted | sent | delivered | read | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    wamid: Mapped[str | None] = mapped_column(String(256), unique=True)
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # reply (to the customer's own message) | notification (the business wrote first)
    origin: Mapped[str] = mapped_column(String(16), default="reply", server_default="reply")
    # A notification's key: the same key again names this row instead of queuing another.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))


class Submission(Base):
    """The answers of a completed flow; outlives the conversation."""

    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_template_name_created_at", "template_name", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    template_name: Mapped[str] = mapped_column(String(64))
    user_key: Mapped[str] = mapped_column(String(160))
    phone_number: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(160))
    answers: Mapped[dict[str, Any]] = mapped_column(JSONType)
    language: Mapped[str | None] = mapped_column(String(16))  # the customer's, when they answered
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConversationEvent(Base):
    """Where a customer entered or left a flow: the drop-off log (``conversation/stats.py``).

    ``event`` is entered | completed | cancelled | expired | switched | restarted |
    template_gone. Rows outlive the conversation row, which is deleted when it ends; ``id``
    orders one customer's events (their messages are processed one at a time).
    """

    __tablename__ = "conversation_events"
    __table_args__ = (
        # Funnel: one template's events per customer in order (stats.dropoff's window).
        Index("ix_conversation_events_template_name_user_key_id", "template_name", "user_key", "id"),
        Index("ix_conversation_events_template_name_created_at", "template_name", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(160))
    template_name: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Order(Base):
    """Orders placed by the ``place_order`` action; the id is the customer's order number."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(160))
    items: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def number(self) -> str:
        return f"ORD-{self.id:06d}"


class SandboxMessage(Base):
    """What the sandbox Graph API received (no Meta account configured): the newcomer's inbox."""

    __tablename__ = "sandbox_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    wamid: Mapped[str] = mapped_column(String(256), unique=True)
    phone_number_id: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(160), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # message | mark_read
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- Business-initiated messages --------------------------------------------------------


class CustomerWindow(Base):
    """When a customer last wrote to one business number: their 24-hour customer service
    window with it (``conversation/window.py``). One row per customer and number."""

    __tablename__ = "customer_windows"

    user_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    phone_number_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Models kept in their own modules, registered on Base here so that the metadata Alembic and
# its tests compare with always holds every table.
from conversation import handoff_models, template_status_models  # noqa: E402, F401
