"""A customer's turn, written in one place: their conversation, the inbound message row,
the drop-off events and the outbox rows, all inside the caller's transaction.

Every writer of those rows comes through here: the worker's hot path (``process_event``),
the dead letter of a message that keeps failing (``dead_letter``), the terminal chat
(``answer_here``) and ``ConversationService``'s start, update, end and expiry.

Order of work on the hot path matters: claim the message id first (a redelivery stops
there), then lock the customer (their ``contacts`` row, upserted), then read their
conversation, run the engine, and write the new state and the outbox rows. The caller
commits, and only then hands the outbox to the sender. Its statements are prebuilt Core
statements that SQLAlchemy caches (``turn_statements.py``), run on the session's
connection: no ORM unit of work per message.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from conversation import consent, handoff_turn, reminders, window
from conversation import turn_statements as sql
from conversation.actions import Actions
from conversation.engine import handle
from conversation.events import InboundEvent, UserRef
from conversation.identity import move_customer
from conversation.jsonb import jsonb_safe
from conversation.kinds import Role, opens_window, reads, role
from conversation.models import ConversationEvent, ConversationState, OutboundMessage, Submission, utcnow
from conversation.state import (
    ConsentChanged,
    Conversation,
    CustomerState,
    Ended,
    EngineConfig,
    Entered,
    FallbackSent,
    Submit,
    TemplateSet,
)
from conversation.template_cache import TEMPLATE_CACHE
from templates.schema import INITIAL, TemplateDef

log = logging.getLogger(__name__)


def snapshot(row: Any) -> Conversation:
    """The engine's view of a stored conversation (an ORM row or a Core row of its columns)."""
    return Conversation(
        template=row.conversation_flow,
        step=row.current_step,
        context=dict(row.context or {}),
        expires_at=row.expires_at,
        last_interaction=row.last_interaction,
        language=row.language,
    )


# --- the hot path -------------------------------------------------------------------


@dataclass
class InboundResult:
    duplicate: bool
    user_key: str
    outcome: str = "duplicate"
    outbox_ids: list[int] = field(default_factory=list)
    events: int = 0  # events recorded for PARLEY_EVENTS_URL: hand them to a deliverer after commit


@dataclass(frozen=True)
class ContactFacts:
    last_fallback_at: datetime | None
    profile_name: str | None
    language: str | None = None


def claim(session: Session, event: InboundEvent, now: datetime) -> int | None:
    """Record the message and return its row id; None when its wamid was seen before (the dedupe key)."""
    params = {
        "wamid": event.wamid,
        "user_key": event.user.key,
        "phone_number_id": event.phone_number_id,
        "message_type": event.message_type,
        "sent_at": event.timestamp,
        "now": now,
        "payload": jsonb_safe(event.raw),
        "refers_to": event.target_wamid or (event.context_wamid if event.kind == "reaction" else None),
    }
    return session.connection().execute(sql.CLAIM, params).scalar()


def lock_contact(session: Session, event: InboundEvent, now: datetime) -> ContactFacts:
    """Upsert the customer's contacts row; the upsert holds its row lock until commit."""
    user = event.user
    params = {
        "user_key": user.key,
        "phone": user.phone or None,
        "user_id": user.user_id or None,
        "profile_name": user.profile_name or None,
        "now": now,
    }
    row = session.connection().execute(sql.CONTACT_UPSERT, params).one()
    return ContactFacts(row.last_fallback_at, row.profile_name, row.language)


def lock_recipient(session: Session, user_key: str, phone: str | None, user_id: str | None) -> datetime | None:
    """Lock (upsert) the contacts row of a customer the business writes to first; when they opted out."""
    params = {"user_key": user_key, "phone": phone, "user_id": user_id}
    return session.connection().execute(sql.RECIPIENT_UPSERT, params).scalar()


def process_event(
    session: Session,
    event: InboundEvent,
    config: EngineConfig,
    mark_as_read: bool = True,
    now: datetime | None = None,
    events: bool = False,
) -> InboundResult:
    """Handle one customer message exactly once; returns the outbox rows to hand on.

    With ``events`` (``PARLEY_EVENTS_URL`` is set) the events this turn causes are recorded.
    """
    now = now or utcnow()
    user_key = event.user.key
    inbound_id = claim(session, event, now)
    if inbound_id is None:
        return InboundResult(duplicate=True, user_key=user_key)
    contact = lock_contact(session, event, now)
    if role(event.kind) is Role.IDENTITY and event.identity is not None:
        # Before the engine: the customer's records are under their new identity from here on.
        move_customer(session, event.identity, now)
    if opens_window(event.kind):
        window.record_inbound(session, user_key, event.phone_number_id, window.opened_at(event.timestamp, now))
    conn = session.connection()
    row = conn.execute(sql.STATE_FOR_UPDATE, {"k": user_key}).first()
    state = CustomerState(
        conversation=snapshot(row) if row is not None else None,
        last_fallback_at=contact.last_fallback_at,
        profile_name=contact.profile_name,
        language=contact.language,
        handed_off=handoff_turn.is_handed_off(session, user_key),
    )
    templates = TEMPLATE_CACHE.get(session)
    result = handle(templates, state, event, now, config, Actions(session, catalogues=config.catalogues))

    if result.conversation is None:
        if row is not None:
            conn.execute(sql.STATE_DELETE, {"k": user_key})
    else:
        values = state_row(event.user, result.conversation, templates, now)
        conn.execute(sql.STATE_UPDATE if row is not None else sql.STATE_INSERT, values)

    if result.language != contact.language:  # remembered for the fallback after it ends
        conn.execute(sql.SET_LANGUAGE, {"k": user_key, "language": result.language})
    recorded = handoff_turn.carry_out(session, event, result, now, events)
    rows_of_events = []
    for effect in result.effects:
        if isinstance(effect, Submit):
            submission_id = uuid.uuid4()
            session.add(
                Submission(
                    id=submission_id,
                    template_name=effect.template,
                    user_key=user_key,
                    phone_number=event.user.phone,
                    user_id=event.user.user_id,
                    answers=effect.answers,
                    language=effect.language,
                    created_at=now,
                )
            )
            if events:
                handoff_turn.flow_completed(session, effect.template, user_key, submission_id, effect.answers, now)
                recorded += 1
        elif isinstance(effect, FallbackSent):
            conn.execute(sql.SET_FALLBACK, {"k": user_key, "now": now})
        elif isinstance(effect, ConsentChanged):
            consent.apply_change(session, user_key, effect.change, now)
        elif isinstance(effect, Entered):
            rows_of_events.append(_event(user_key, effect.template, effect.step, "entered", now))
        elif isinstance(effect, Ended):
            rows_of_events.append(_event(user_key, effect.template, effect.step, effect.reason, now))
            log.info("conversation ended", extra={"template": effect.template, "step": effect.step})
    if rows_of_events:
        # Effects come in order (an end before the next start), and so must the rows' ids.
        conn.execute(sql.EVENT_INSERT, rows_of_events).all()

    rows = []
    if mark_as_read and reads(event.kind, result.outcome):
        rows.append(outbound_row(event, "mark_read", {"message_id": event.wamid}, now))
    rows.extend(outbound_row(event, "message", content, now) for content in result.messages)
    ids = _queue(session, rows)
    conn.execute(sql.SET_OUTCOME, {"inbound_id": inbound_id, "outcome": result.outcome})
    return InboundResult(False, user_key, result.outcome, ids, recorded)


def dead_letter(session: Session, event: InboundEvent, error: str, apology: dict[str, Any], now: datetime) -> bool:
    """Record a message that keeps failing as "failed" (a redelivery then skips it), and
    queue ``apology`` to the customer the first time only; True when it was queued.

    Runs after the failed transaction rolled back, so it only inserts and never blocks
    the customer's later messages.
    """
    first = claim(session, event, now) is not None
    session.connection().execute(sql.SET_FAILED, {"w": event.wamid, "why": error[:2000]})
    if first:
        lock_contact(session, event, now)  # the sender's lease lives on this row
        _queue(session, [outbound_row(event, "message", apology, now)])
    return first


def answer_here(session: Session, event: InboundEvent, config: EngineConfig) -> list[dict[str, Any]]:
    """A turn whose replies the caller shows itself (the terminal chat): their contents, in order.

    The rows leave the outbox at once: a pending row would be sent later by the outbox
    sweep to a customer who does not exist. No read receipt is queued.
    """
    result = process_event(session, event, config, mark_as_read=False)
    if not result.outbox_ids:
        return []
    ids = OutboundMessage.id.in_(result.outbox_ids)
    contents = list(session.scalars(select(OutboundMessage.content).where(ids).order_by(OutboundMessage.id)))
    session.execute(delete(OutboundMessage).where(ids))
    return [dict(content) for content in contents]


def _queue(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert outbox rows; their ids ascend in the order given, the order the sender sends them."""
    return list(session.connection().execute(sql.OUTBOX_INSERT, rows).scalars()) if rows else []


def state_row(user: UserRef, conv: Conversation, templates: TemplateSet, now: datetime) -> dict[str, Any]:
    """The parameters of ``sql.STATE_UPDATE`` / ``sql.STATE_INSERT`` for a live conversation."""
    return {
        "k": user.key,
        "phone": user.phone or None,
        "user_id": user.user_id or None,
        "flow": conv.template,
        "step": conv.step,
        "context": conv.context,
        "last": conv.last_interaction,
        "expires": conv.expires_at,
        "remind": reminders.due_at(templates, conv, now),
        "language": conv.language,
        "now": now,
        "id": uuid.uuid4(),
    }


def outbound_row(event: InboundEvent, kind: str, content: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One pending outbox row answering ``event``, as ``sql.OUTBOX_INSERT`` takes it."""
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


# --- an operator's or the seed API's writes (ConversationService) --------------------


def set_language(session: Session, user_key: str, language: str | None) -> bool:
    """Speak ``language`` to ``user_key`` from their next message on (the simulator's switch); False: no such customer."""
    conn = session.connection()
    conn.execute(sql.STATE_SET_LANGUAGE, {"k": user_key, "language": language})
    return bool(conn.execute(sql.SET_LANGUAGE, {"k": user_key, "language": language}).rowcount)


def record_event(session: Session, user_key: str, template: str, step: str, event: str, now: datetime) -> None:
    """Log where a customer entered or left a flow (``ConversationEvent``)."""
    session.add(ConversationEvent(**_event(user_key, template, step, event, now)))


def live_conversation(
    session: Session, user_key: str, now: datetime, for_update: bool = False
) -> ConversationState | None:
    """The live conversation of ``user_key``; an expired one counts as absent."""
    stmt = select(ConversationState).where(ConversationState.user_key == user_key)
    if for_update:
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    if row is None or row.expires_at <= now:
        return None
    return row


def start(
    session: Session, user: UserRef, template: TemplateDef, config: EngineConfig, now: datetime
) -> ConversationState:
    """Put ``user`` at the start of ``template``, replacing any conversation they had."""
    end(session, user.key, "restarted", now)
    record_event(session, user.key, template.template_name, INITIAL, "entered", now)
    row = ConversationState(
        user_key=user.key,
        phone_number=user.phone,
        user_id=user.user_id,
        conversation_flow=template.template_name,
        current_step=INITIAL,
        context={},
        last_interaction=now,
        expires_at=config.expiry(template, now),
    )
    session.add(row)
    session.flush()
    return row


def move(
    session: Session,
    user_key: str,
    now: datetime,
    step: str | None = None,
    context: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
) -> ConversationState | None:
    """Move the live conversation and merge ``context`` into it (keys are added, never
    wiped); None when there is none."""
    row = live_conversation(session, user_key, now, for_update=True)
    if row is None:
        return None
    if step is not None:
        row.current_step = step
    if context:
        row.context = {**(row.context or {}), **context}
    if expires_at is not None:
        row.expires_at = expires_at
    row.last_interaction = now
    session.flush()
    return row


def end(session: Session, user_key: str, reason: str, now: datetime) -> bool:
    """End ``user_key``'s conversation with ``reason`` at its step; False when there was none."""
    row = session.scalar(select(ConversationState).where(ConversationState.user_key == user_key).with_for_update())
    if row is None:
        return False
    # An expired row was already abandoned; the drop-off log says so rather than blame the operator.
    event = "expired" if row.expires_at <= now else reason
    record_event(session, user_key, row.conversation_flow, row.current_step, event, now)
    session.delete(row)
    session.flush()
    return True


def expire(session: Session, now: datetime, batch_size: int = 500) -> int:
    """Delete expired conversations in batches, logging each; safe to run from two processes at once.

    Rows a worker holds locked (a customer writing right now) are skipped, not waited
    for; the worker treats an expired row as absent anyway.
    """
    total = 0
    while True:
        due = (
            select(
                ConversationState.id,
                ConversationState.user_key,
                ConversationState.conversation_flow,
                ConversationState.current_step,
            )
            .where(ConversationState.expires_at <= now)
            .limit(batch_size)
        )
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        rows = session.execute(due).all()
        if not rows:
            return total
        # The rows are locked (Postgres) or the database is (SQLite): each one logged here is deleted below.
        for row in rows:
            record_event(session, row.user_key, row.conversation_flow, row.current_step, "expired", now)
        batch = [row.id for row in rows]
        session.execute(
            delete(ConversationState).where(ConversationState.id.in_(batch)).where(ConversationState.expires_at <= now)
        )
        session.flush()
        total += len(batch)
        if len(batch) < batch_size:
            return total
