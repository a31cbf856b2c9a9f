"""One inbound message through the engine, inside the caller's transaction.

Order of work matters: claim the message id first (a redelivery stops there), then lock
the customer (their ``contacts`` row, upserted), then read their conversation, run the
engine, and write the new state and the outbox rows. The caller commits, and only then
hands the outbox to the sender.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from conversation.actions import Actions
from conversation.engine import handle
from conversation.events import InboundEvent, StatusEvent
from conversation.models import (
    Contact,
    ConversationEvent,
    ConversationState,
    InboundMessage,
    OutboundMessage,
    Submission,
    utcnow,
)
from conversation.service import ConversationService, snapshot
from conversation.state import CustomerState, Ended, EngineConfig, Entered, FallbackSent, Submit

log = logging.getLogger(__name__)


@dataclass
class InboundResult:
    duplicate: bool
    user_key: str
    outcome: str = "duplicate"
    outbox_ids: list[int] = field(default_factory=list)


# The claim and the contact upsert. Written as text because SQLAlchemy 2.0 cannot cache a
# dialect ``insert()`` with ON CONFLICT (postgresql.Insert sets ``inherit_cache = False``):
# built that way, both were compiled again for every message (~10 % of a worker's busy
# time). SQLite and Postgres share this syntax; the column types bind the values.
_CLAIM = (
    text(
        "INSERT INTO inbound_messages"
        " (wamid, user_key, phone_number_id, message_type, sent_at, received_at, payload, outcome)"
        " VALUES (:wamid, :user_key, :phone_number_id, :message_type, :sent_at, :now, :payload, 'processing')"
        " ON CONFLICT (wamid) DO NOTHING RETURNING id"
    )
    .bindparams(
        bindparam("sent_at", type_=InboundMessage.sent_at.type),
        bindparam("now", type_=InboundMessage.received_at.type),
        bindparam("payload", type_=InboundMessage.payload.type),
    )
    .columns(InboundMessage.id)
)
_CONTACT_UPSERT = (
    text(
        "INSERT INTO contacts (user_key, phone_number, user_id, profile_name, last_seen_at, pair_limit_hits)"
        " VALUES (:user_key, :phone, :user_id, :profile_name, :now, 0)"
        " ON CONFLICT (user_key) DO UPDATE SET last_seen_at = excluded.last_seen_at,"
        # What this message does not say (a phone hidden behind a username) stays as known.
        " phone_number = coalesce(excluded.phone_number, contacts.phone_number),"
        " user_id = coalesce(excluded.user_id, contacts.user_id),"
        " profile_name = coalesce(excluded.profile_name, contacts.profile_name)"
        " RETURNING last_fallback_at, profile_name"
    )
    .bindparams(bindparam("now", type_=Contact.last_seen_at.type))
    .columns(Contact.last_fallback_at, Contact.profile_name)
)
_SET_OUTCOME = (
    update(InboundMessage).where(InboundMessage.id == bindparam("inbound_id")).values(outcome=bindparam("outcome"))
)


def jsonb_safe(value: Any) -> Any:
    """Postgres JSONB refuses NUL characters, lone surrogates and NaN; a payload may still hold them."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {jsonb_safe(k): jsonb_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonb_safe(v) for v in value]
    return value


def claim(session: Session, event: InboundEvent, now: datetime) -> int | None:
    """Record the message and return its row id; None when its wamid was seen before (the dedupe key)."""
    conn = session.connection()
    params = {
        "wamid": event.wamid,
        "user_key": event.user.key,
        "phone_number_id": event.phone_number_id,
        "message_type": event.message_type,
        "sent_at": event.timestamp,
        "now": now,
        "payload": jsonb_safe(event.raw),
    }
    return conn.execute(_CLAIM, params).scalar()


@dataclass(frozen=True)
class ContactFacts:
    last_fallback_at: datetime | None
    profile_name: str | None


def lock_contact(session: Session, event: InboundEvent, now: datetime) -> ContactFacts:
    """Upsert the customer's contacts row; the upsert holds its row lock until commit."""
    user = event.user
    conn = session.connection()
    params = {
        "user_key": user.key,
        "phone": user.phone or None,
        "user_id": user.user_id or None,
        "profile_name": user.profile_name or None,
        "now": now,
    }
    row = conn.execute(_CONTACT_UPSERT, params).one()
    return ContactFacts(row.last_fallback_at, row.profile_name)


def process_event(
    session: Session,
    event: InboundEvent,
    config: EngineConfig,
    mark_as_read: bool = True,
    now: datetime | None = None,
) -> InboundResult:
    """Handle one customer message exactly once; returns the outbox rows to hand on."""
    now = now or utcnow()
    user_key = event.user.key
    inbound_id = claim(session, event, now)
    if inbound_id is None:
        return InboundResult(duplicate=True, user_key=user_key)
    contact = lock_contact(session, event, now)
    conn = session.connection()
    row = conn.execute(_STATE_FOR_UPDATE, {"k": user_key}).first()
    state = CustomerState(
        conversation=snapshot(row) if row is not None else None,
        last_fallback_at=contact.last_fallback_at,
        profile_name=contact.profile_name,
    )
    templates = ConversationService(session, config).template_set()
    result = handle(templates, state, event, now, config, Actions(session))

    if result.conversation is None:
        if row is not None:
            conn.execute(_STATE_DELETE, {"k": user_key})
    else:
        conv = result.conversation
        values = {
            "k": user_key,
            "phone": event.user.phone or None,
            "user_id": event.user.user_id or None,
            "flow": conv.template,
            "step": conv.step,
            "context": conv.context,
            "last": conv.last_interaction,
            "expires": conv.expires_at,
            "now": now,
        }
        conn.execute(_STATE_UPDATE if row is not None else _STATE_INSERT, {**values, "id": uuid.uuid4()})

    events = []
    for effect in result.effects:
        if isinstance(effect, Submit):
            session.add(
                Submission(
                    template_name=effect.template,
                    user_key=user_key,
                    phone_number=event.user.phone,
                    user_id=event.user.user_id,
                    answers=effect.answers,
                    created_at=now,
                )
            )
        elif isinstance(effect, FallbackSent):
            conn.execute(_SET_FALLBACK, {"k": user_key, "now": now})
        elif isinstance(effect, Entered):
            events.append(_event(user_key, effect.template, effect.step, "entered", now))
        elif isinstance(effect, Ended):
            events.append(_event(user_key, effect.template, effect.step, effect.reason, now))
            log.info("conversation ended", extra={"template": effect.template, "step": effect.step})
    if events:
        # Effects come in order (an end before the next start), and so must the rows' ids.
        conn.execute(_EVENT_INSERT.returning(ConversationEvent.id, sort_by_parameter_order=True), events).all()

    rows = []
    if mark_as_read and event.kind != "reaction":
        rows.append(_outbound(event, "mark_read", {"message_id": event.wamid}, now))
    rows.extend(_outbound(event, "message", content, now) for content in result.messages)
    # In order: the sender sends a customer's rows by ascending id.
    ids = list(conn.execute(_OUTBOX_INSERT, rows).scalars()) if rows else []
    conn.execute(_SET_OUTCOME, {"inbound_id": inbound_id, "outcome": result.outcome})
    return InboundResult(False, user_key, result.outcome, ids)


def _outbound(event: InboundEvent, kind: str, content: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "user_key": event.user.key,
        "phone_number_id": event.phone_number_id,
        "to_phone": event.user.phone,
        "to_user_id": event.user.user_id,
        "kind": kind,
        "content": content,
        "inbound_wamid": event.wamid,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _event(user_key: str, template: str, step: str, what: str, now: datetime) -> dict[str, Any]:
    return {"user_key": user_key, "template_name": template, "step": step, "event": what, "created_at": now}


_state = ConversationState.__table__
_STATE_FOR_UPDATE = (
    select(
        ConversationState.conversation_flow,
        ConversationState.current_step,
        ConversationState.context,
        ConversationState.expires_at,
        ConversationState.last_interaction,
    )
    .where(ConversationState.user_key == bindparam("k"))
    .with_for_update()
)
_STATE_DELETE = _state.delete().where(_state.c.user_key == bindparam("k"))
_STATE_FIELDS = {
    "conversation_flow": bindparam("flow"),
    "current_step": bindparam("step"),
    "context": bindparam("context", type_=_state.c.context.type),
    "last_interaction": bindparam("last", type_=_state.c.last_interaction.type),
    "expires_at": bindparam("expires", type_=_state.c.expires_at.type),
    "updated_at": bindparam("now", type_=_state.c.updated_at.type),
}
_STATE_INSERT = _state.insert().values(
    id=bindparam("id", type_=_state.c.id.type),
    user_key=bindparam("k"),
    phone_number=bindparam("phone"),
    user_id=bindparam("user_id"),
    created_at=bindparam("now", type_=_state.c.created_at.type),
    **_STATE_FIELDS,
)
_STATE_UPDATE = (
    _state.update()
    .where(_state.c.user_key == bindparam("k"))
    .values(
        # A message that does not carry the phone (a username user) keeps the one known.
        phone_number=func.coalesce(bindparam("phone", type_=_state.c.phone_number.type), _state.c.phone_number),
        user_id=func.coalesce(bindparam("user_id", type_=_state.c.user_id.type), _state.c.user_id),
        **_STATE_FIELDS,
    )
)
_SET_FALLBACK = update(Contact).where(Contact.user_key == bindparam("k")).values(last_fallback_at=bindparam("now"))
_EVENT_INSERT = ConversationEvent.__table__.insert()
_OUTBOX_INSERT = OutboundMessage.__table__.insert().returning(OutboundMessage.id, sort_by_parameter_order=True)


# Delivery statuses only move forward; "failed" may replace accepted/sent, never delivered/read.
STATUS_RANK = {"pending": 0, "sending": 0, "accepted": 1, "sent": 2, "delivered": 3, "read": 4, "played": 4}


def apply_status(session: Session, status: StatusEvent) -> str:
    """Record a delivery receipt on our outbound row; returns what happened (for logs/tests)."""
    row = session.scalar(select(OutboundMessage).where(OutboundMessage.wamid == status.wamid).with_for_update())
    if row is None:
        return "unknown"
    if status.status == "failed":
        if STATUS_RANK.get(row.status, 0) >= STATUS_RANK["delivered"]:
            return "stale"
        row.status = "failed"
        row.last_error_code = status.error_code
        row.last_error = status.error_title
    elif status.status in STATUS_RANK:
        if row.status == "failed" or STATUS_RANK[status.status] <= STATUS_RANK.get(row.status, 0):
            return "stale"
        row.status = status.status
    else:
        return "ignored"
    row.status_at = status.timestamp
    row.updated_at = utcnow()
    return "applied"
