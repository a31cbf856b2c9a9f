"""Beat's reminder sweep: queue each due reminder once (see ``conversation/reminders.py``)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import template_status, turn, window
from conversation import turn_statements as sql
from conversation.content import text_message
from conversation.models import Contact, ConversationState
from conversation.state import TemplateSet
from conversation.template_messages import template_content
from templates.message_templates import Catalogue
from templates.placeholders import render
from templates.schema import Step

log = logging.getLogger(__name__)
ORIGIN = "reminder"


def content(step: Step, values: dict[str, Any], window_open: bool, language: str) -> dict[str, Any] | None:
    """The reminder's message: its text inside the window, its template (in ``language``)
    outside; None: nothing may go."""
    if window_open and step.reminder:
        return text_message(render(step.reminder, values))
    if step.reminder_template is not None:
        call = step.reminder_template
        return template_content(call.name, language, [render(p, values) for p in call.parameters])
    return None


def due_customers(session: Session, now: datetime, limit: int = 200) -> list[str]:
    """Customers whose reminder is due, in one fixed order (two sweeps lock alike)."""
    stmt = (
        select(ConversationState.user_key)
        .where(ConversationState.remind_at <= now, ConversationState.expires_at > now)
        .order_by(ConversationState.user_key)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def send_due(
    session: Session, templates: TemplateSet, now: datetime, limit: int = 200, catalogue: Catalogue | None = None
) -> list[str]:
    """Queue every due reminder in ``session``'s transaction; the customers to hand to a sender.

    ``catalogue`` (the declared message templates) gives a reminder template's category when
    Meta has not said one, so a marketing reminder is not sent to a customer who stopped them."""
    queued = []
    for user_key in due_customers(session, now, limit):
        if _remind(session, templates, user_key, now, catalogue or Catalogue()):
            queued.append(user_key)
    return queued


def _remind(session: Session, templates: TemplateSet, user_key: str, now: datetime, catalogue: Catalogue) -> bool:
    row = session.scalar(select(ConversationState).where(ConversationState.user_key == user_key))
    if row is None:
        return False
    opted_out_at = turn.lock_recipient(session, user_key, row.phone_number, row.user_id)
    row = session.scalar(
        select(ConversationState)
        .where(ConversationState.user_key == user_key, ConversationState.remind_at <= now)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None or row.expires_at <= now:  # answered, sent by another sweep, or over
        return False
    row.remind_at = None
    # The flow in the conversation's language: a Portuguese customer is reminded in Portuguese.
    template = templates.get(row.conversation_flow, row.language)
    step = template.steps.get(row.current_step) if template is not None else None
    latest = window.windows(session, user_key)
    if step is None or opted_out_at is not None or not latest:
        return False
    name = session.scalar(select(Contact.profile_name).where(Contact.user_key == user_key))
    values = {"profile_name": name or "there", **(row.context or {})}
    call = step.reminder_template
    # The template of the conversation's language, where Meta approved one of that name.
    language = catalogue.language_for(call.name, row.language, call.language) if call is not None else ""
    message = content(step, values, latest[0].is_open(now), language)
    if message is None:
        log.info(
            "reminder skipped: the window has closed and the step has no template", extra={"step": row.current_step}
        )
        return False
    # Meta refuses a paused or disabled template, and a customer may have stopped marketing.
    is_template = message["type"] == "template" and call is not None
    why = template_status.refusal(session, user_key, call.name, language, catalogue) if is_template else None
    if why is not None:
        log.warning("reminder not sent: %s", why, extra={"step": row.current_step})
        return False
    outbound = {
        "user_key": user_key,
        "phone_number_id": latest[0].phone_number_id,
        "to_phone": row.phone_number,
        "to_user_id": row.user_id,
        "kind": "message",
        "content": message,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "origin": ORIGIN,
    }
    session.connection().execute(sql.OUTBOX_INSERT, [outbound]).all()
    return True
