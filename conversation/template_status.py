"""Meta's verdict on each message template, and whether parley may send it.

Meta reviews every template and may later pause it (low quality), disable it, or change
its category; it says so in template webhooks (``account_changes.py``), which ``record``
stores per name and language. ``refusal`` is the one check a send path makes before
queueing a template: a template Meta has not cleared for sending, or a marketing template
to a customer who stopped promotions (``marketing.py``), is refused with the reason.
A template Meta never mentioned is sendable: most are approved before parley runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import marketing
from conversation.account_changes import TemplateUpdate
from conversation.template_status_models import MessageTemplateStatus
from templates.message_templates import Catalogue

# Statuses under which Meta refuses the template (132015 paused, 132016 disabled, ...).
BLOCKING = frozenset({"PAUSED", "DISABLED", "REJECTED", "PENDING_DELETION", "DELETED", "ARCHIVED", "LOCKED"})
# A template back in service after a pause says REINSTATED rather than APPROVED.
SENDABLE_AGAIN = ("APPROVED", "REINSTATED")


def record(session: Session, update: TemplateUpdate, now: datetime) -> None:
    """Keep what ``update`` says; the fields it does not carry stay as they were."""
    row = session.get(MessageTemplateStatus, (update.name, update.language), with_for_update=True)
    if row is None:
        row = MessageTemplateStatus(name=update.name, language=update.language)
        session.add(row)
    row.template_id = update.template_id or row.template_id
    if update.status is not None:
        row.status, row.reason = update.status, update.reason
    row.category = update.category or row.category
    row.quality = update.quality or row.quality
    row.updated_at = now
    session.flush()


def blocked(session: Session, name: str, language: str) -> str | None:
    """Why Meta would refuse the template now (its status), or None when it may be sent."""
    row = session.get(MessageTemplateStatus, (name, language))
    if row is None or row.status not in BLOCKING:
        return None
    because = f": {row.reason}" if row.reason and row.reason.upper() != "NONE" else ""
    return f"the message template {name} ({language}) is {row.status} by Meta{because}"


def refusal(session: Session, user_key: str, name: str, language: str, catalogue: Catalogue) -> str | None:
    """Why ``name`` must not be sent to ``user_key`` now, or None."""
    why = blocked(session, name, language)
    if why is not None:
        return why
    declared = catalogue.get(name, language)
    category = status_category(session, name, language) or (declared.category if declared else None)
    if category == "MARKETING":
        since = marketing.stopped_since(session, user_key)
        if since is not None:
            return f"the customer stopped marketing messages in WhatsApp on {since.isoformat()}"
    return None


def status_category(session: Session, name: str, language: str) -> str | None:
    """The category Meta last gave the template, when it said one."""
    return session.scalar(
        select(MessageTemplateStatus.category).where(
            MessageTemplateStatus.name == name, MessageTemplateStatus.language == language
        )
    )


def listing(session: Session) -> list[dict[str, Any]]:
    """Every template Meta told parley about, for the admin API."""
    rows = session.scalars(
        select(MessageTemplateStatus).order_by(MessageTemplateStatus.name, MessageTemplateStatus.language)
    )
    return [
        {
            "name": r.name,
            "language": r.language,
            "template_id": r.template_id,
            "status": r.status,
            "reason": r.reason,
            "category": r.category,
            "quality": r.quality,
            "sendable": r.status not in BLOCKING,
            "updated_at": r.updated_at.isoformat(),
        }
        for r in rows
    ]


def not_approved(session: Session, names: list[tuple[str, str]]) -> list[str]:
    """For ``templates validate``: the declared templates whose last status from Meta is not APPROVED."""
    known = {(r.name, r.language): r.status for r in session.scalars(select(MessageTemplateStatus))}
    return [
        f"{name} ({language}): Meta's last status is {known[(name, language)]}"
        for name, language in names
        if known.get((name, language)) not in (None, *SENDABLE_AGAIN)
    ]
