"""The turn writer's part of people in the loop, inside the customer's turn transaction.

``turn.process_event`` asks ``is_handed_off`` before it runs the engine (the engine's paused
state), then ``carry_out`` writes what the engine decided: a new handoff (and its
``handoff.requested`` event), or a message kept for the person. ``flow_completed`` records
the event of a submission. With events off (no ``PARLEY_EVENTS_URL``) nothing piles up in
the events outbox.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import event_outbox, handoff
from conversation.events import InboundEvent
from conversation.handoff_models import Handoff
from conversation.state import HandOff, Outcome, StepResult

# The outcome of the opt-out word's route, which the step machine tries before the paused state.
OPTED_OUT = "opted_out"


def is_handed_off(session: Session, user_key: str) -> bool:
    """Whether the customer has an open handoff (the partial unique index answers it)."""
    stmt = select(Handoff.id).where(Handoff.user_key == user_key, Handoff.released_at.is_(None)).limit(1)
    return session.connection().execute(stmt).first() is not None


def customer(event: InboundEvent) -> handoff.Customer:
    user = event.user
    return handoff.Customer(user.key, user.phone or None, user.user_id or None, event.phone_number_id)


def carry_out(session: Session, event: InboundEvent, result: StepResult, now: datetime, events: bool) -> int:
    """Open the handoff the engine asked for, count a paused customer's message, or release
    one who opted out; returns how many events were recorded."""
    recorded = 0
    if result.outcome == Outcome.WAITING:
        handoff.keep_waiting(session, event.user.key, waiting_text(event), now)
    elif result.outcome == OPTED_OUT:
        # An opt-out word is answered even while handed off; it also ends the handoff.
        handoff.release(session, event.user.key, now, reason="opt_out")
    for effect in result.effects:
        if isinstance(effect, HandOff):
            # The message that asked (a tap on "Contact us", the handoff word) is the first one waiting.
            _, new = handoff.request(
                session,
                customer(event),
                now,
                template=effect.template,
                step=effect.step,
                text=waiting_text(event),
                events=events,
            )
            recorded += int(new and events)
    return recorded


def waiting_text(event: InboundEvent) -> str | None:
    """What the inbox shows as the customer's last message: their text, else what they sent."""
    if event.text:
        return event.text
    return f"[{event.message_type}]"


def flow_completed(
    session: Session, template: str, user_key: str, submission_id: uuid.UUID, answers: dict[str, Any], now: datetime
) -> None:
    """Record ``flow.completed`` with the submission's answers, in the submission's transaction."""
    data = event_outbox.flow_completed(template, user_key, submission_id, answers)
    event_outbox.record(session, event_outbox.FLOW_COMPLETED, data, now)
