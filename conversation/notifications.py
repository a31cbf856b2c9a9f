"""Notifications: messages the business sends first, each one an outbox row.

``create_notification`` runs inside the caller's transaction (the admin API's, the CLI's,
or the business's own code's, next to its own writes) and queues nothing until that
commits; after the commit the caller hands the customer to a sender, as the inbound path
does. A notification then has every guarantee of a reply: sent once, in order with the
customer's replies, retried by Graph error code, its delivery statuses recorded.

Order: the customer's ``contacts`` row is locked (upserted) before the row is inserted,
the same lock the inbound path takes, so rows get their ids, and go out, in the order
their transactions committed. Idempotency: the key is unique in the database, so the same
key three times at once names one row, whichever transaction wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, text
from sqlalchemy.orm import Session

from conversation import template_status, turn, window
from conversation.models import Contact, OutboundMessage
from conversation.template_messages import template_content, text_content
from templates.message_templates import Catalogue

BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$")
_PHONE_PUNCTUATION = re.compile(r"[\s().+-]")
_PHONE = re.compile(r"^\d{5,15}$")
ORIGIN = "notification"


class NotificationRefused(Exception):
    """The request cannot be queued; ``status`` is the HTTP answer, ``field`` what is wrong."""

    status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(NotificationRefused):
    status = 422


class WindowClosed(NotificationRefused):
    status = 409


class OptedOut(NotificationRefused):
    status = 409


class TemplateNotSendable(NotificationRefused):
    status = 409


@dataclass(frozen=True)
class TemplateRequest:
    name: str
    language: str
    parameters: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NotificationRequest:
    """Exactly one of ``template`` and ``text``."""

    to: str
    idempotency_key: str
    template: TemplateRequest | None = None
    text: str | None = None
    phone_number_id: str | None = None


@dataclass(frozen=True)
class Created:
    id: int
    user_key: str
    status: str
    created: bool  # False: the key named an existing notification, nothing new was queued


@dataclass(frozen=True)
class Recipient:
    user_key: str
    phone: str | None
    user_id: str | None


def resolve(session: Session, to: str) -> Recipient:
    """The customer ``to`` names (a BSUID, or a phone number in any usual spelling).

    A known customer keeps the identity their conversations use, so a notification queues
    behind their replies; someone who never wrote is identified as given.
    """
    if BSUID.match(to):
        phone, user_id = None, to
        match = or_(Contact.user_key == to, Contact.user_id == to)
    else:
        digits = _PHONE_PUNCTUATION.sub("", to)
        if not _PHONE.match(digits):
            raise Invalid("must be a phone number with country code (5 to 15 digits) or a BSUID", "to")
        phone, user_id = digits, None
        match = or_(Contact.user_key == digits, Contact.phone_number == digits)
    known = session.execute(
        select(Contact.user_key, Contact.phone_number, Contact.user_id)
        .where(match)
        .order_by((Contact.user_key == (user_id or phone)).desc(), Contact.last_seen_at.desc().nulls_last())
        .limit(1)
    ).first()
    if known is not None:
        return Recipient(known.user_key, known.phone_number or phone, known.user_id or user_id)
    return Recipient(user_id or phone or to, phone, user_id)


# Text for the reason of conversation/turn_statements.py's: a dialect insert with ON
# CONFLICT is compiled again on every call. It runs on Postgres and SQLite.
_INSERT = (
    text(
        "INSERT INTO outbound_messages (user_key, phone_number_id, to_phone, to_user_id, kind, content, status,"
        " attempts, created_at, updated_at, origin, idempotency_key)"
        " VALUES (:k, :number, :phone, :user_id, 'message', :content, 'pending', 0, :now, :now, :origin, :key)"
        " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id"
    )
    .bindparams(
        bindparam("content", type_=OutboundMessage.content.type),
        bindparam("now", type_=OutboundMessage.created_at.type),
    )
    .columns(OutboundMessage.id)
)


def existing(session: Session, key: str) -> Created | None:
    row = session.execute(
        select(OutboundMessage.id, OutboundMessage.user_key, OutboundMessage.status).where(
            OutboundMessage.idempotency_key == key
        )
    ).first()
    return Created(row.id, row.user_key, public_status(row.status), created=False) if row is not None else None


def create_notification(
    session: Session,
    request: NotificationRequest,
    catalogue: Catalogue,
    default_phone_number_id: str | None,
    now: datetime,
) -> Created:
    """Queue the notification in ``session``'s transaction, or raise NotificationRefused
    (nothing queued). The same key again returns the first notification, created False."""
    if request.template is not None:
        call = request.template
        problems = catalogue.check_call(call.name, call.language, call.parameters)
        if problems:
            raise Invalid(problems[0].message, problems[0].field)
        content = template_content(call.name, call.language, call.parameters)
    elif request.text is not None:
        content = text_content(request.text)
    else:
        raise Invalid("give either template or text", "template")
    found = existing(session, request.idempotency_key)
    if found is not None:
        return found
    recipient = resolve(session, request.to)
    if request.template is not None and (
        why := template_status.refusal(
            session, recipient.user_key, request.template.name, request.template.language, catalogue
        )
    ):
        raise TemplateNotSendable(why, "template")
    # A savepoint: a refusal leaves the caller's transaction as it was (no new contact row).
    with session.begin_nested():
        return _queue(session, request, recipient, content, default_phone_number_id, now)


def _queue(
    session: Session,
    request: NotificationRequest,
    recipient: Recipient,
    content: dict[str, Any],
    default_phone_number_id: str | None,
    now: datetime,
) -> Created:
    conn = session.connection()
    params = {"k": recipient.user_key, "phone": recipient.phone, "user_id": recipient.user_id}
    # The lock first: an opt-out or a reply being written for this customer commits before we look.
    opted_out_at = turn.lock_recipient(session, recipient.user_key, recipient.phone, recipient.user_id)
    if opted_out_at is not None:
        raise OptedOut(f"the customer opted out of notifications on {opted_out_at.isoformat()}", "to")
    number = request.phone_number_id or _last_number(session, recipient.user_key) or default_phone_number_id
    if number is None:
        message = "the customer never wrote to a business number and WHATSAPP_PHONE_NUMBER_ID is not set"
        raise Invalid(message, "phone_number_id")
    if request.text is not None:
        last = window.last_inbound(session, recipient.user_key, number)
        if not window.is_open(last, now):
            raise WindowClosed(_closed_reason(last), "text")
    values = {
        **params,
        "number": number,
        "content": content,
        "now": now,
        "origin": ORIGIN,
        "key": request.idempotency_key,
    }
    row_id = conn.execute(_INSERT, values).scalar()
    if row_id is None:  # a concurrent request with this key committed first
        found = existing(session, request.idempotency_key)
        assert found is not None, "the conflicting row is committed, so it is visible"
        return found
    return Created(row_id, recipient.user_key, "pending", created=True)


def _last_number(session: Session, user_key: str) -> str | None:
    latest = window.windows(session, user_key)
    return latest[0].phone_number_id if latest else None


def _closed_reason(last: datetime | None) -> str:
    if last is None:
        return "the 24-hour customer service window is closed: the customer never wrote; send a template"
    return (
        f"the 24-hour customer service window is closed: the customer last wrote at {last.isoformat()}; send a template"
    )


# The outbox's states as the notifications API names them. Graph accepting the message
# counts as sent: it has left parley; Meta's status webhooks then move it on.
PUBLIC_STATUS = {
    "pending": "pending",
    "sending": "pending",
    "accepted": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}


def public_status(status: str) -> str:
    return PUBLIC_STATUS.get(status, status)


def get_notification(session: Session, notification_id: int) -> dict[str, Any] | None:
    """The notification as the admin API shows it; None when no notification has that id."""
    row = session.scalar(
        select(OutboundMessage).where(OutboundMessage.id == notification_id, OutboundMessage.origin == ORIGIN)
    )
    if row is None:
        return None
    status = public_status(row.status)
    error = None
    if status == "failed":
        error = {"code": row.last_error_code, "message": row.last_error}
    return {
        "id": row.id,
        "status": status,
        "error": error,
        "to": row.user_key,
        "idempotency_key": row.idempotency_key,
        "phone_number_id": row.phone_number_id,
        "content": row.content,
        "wamid": row.wamid,
        "created_at": row.created_at.isoformat(),
        "status_at": row.status_at.isoformat() if row.status_at is not None else None,
    }
