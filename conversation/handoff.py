"""People in the loop: hand a customer to a person, keep what they write, reply, release.

While a customer has an open :class:`Handoff` the bot is paused for them: the turn writer
keeps their messages (``keep_waiting``) instead of running the flow. A person answers
through the outbox like any reply (``reply``), and ``release`` gives the customer back to
the bot with no conversation live, so their next message starts afresh. A handoff nobody
answers for ``PARLEY_HANDOFF_TIMEOUT_HOURS`` is released by itself (``release_lapsed``).
Every function works inside the caller's unit of work and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from conversation import event_outbox, window
from conversation.handoff_models import Handoff
from conversation.models import Contact, ConversationState, InboundMessage, OutboundMessage

MAX_REPLY = 4096  # WhatsApp's limit of a text body


class NotHandedOff(LookupError):
    """The customer has no open handoff."""


class WindowClosed(RuntimeError):
    """The customer's last message is older than 24 hours (or they never wrote)."""


@dataclass(frozen=True)
class Customer:
    """Who is handed off and where replies go: BSUID when known, else the phone."""

    user_key: str
    phone_number: str | None
    user_id: str | None
    phone_number_id: str


@dataclass(frozen=True)
class Waiting:
    user: str
    since: datetime
    last_message: str | None
    waiting: int


def is_handoff_word(text: str | None, words: tuple[str, ...]) -> bool:
    """The whole message is one of ``PARLEY_HANDOFF_WORDS`` (case and outer spaces ignored)."""
    return text is not None and text.strip().casefold() in {w.casefold() for w in words}


def open_handoff(session: Session, user_key: str) -> Handoff | None:
    return session.scalar(select(Handoff).where(Handoff.user_key == user_key, Handoff.released_at.is_(None)))


def request(
    session: Session,
    customer: Customer,
    now: datetime,
    *,
    template: str | None = None,
    step: str | None = None,
    text: str | None = None,
    events: bool = False,
) -> tuple[Handoff, bool]:
    """Hand the customer to a person; returns the open handoff and whether it is new.

    Asking again while handed off changes nothing but counts the message as waiting. With
    ``events`` a ``handoff.requested`` event is recorded in the same transaction.
    """
    existing = open_handoff(session, customer.user_key)
    if existing is not None:
        keep_waiting(session, customer.user_key, text, now)
        return existing, False
    handoff = Handoff(
        user_key=customer.user_key,
        phone_number=customer.phone_number,
        user_id=customer.user_id,
        phone_number_id=customer.phone_number_id,
        template_name=template,
        step=step,
        requested_at=now,
        waiting=1 if text is not None else 0,
        last_message=text,
        last_customer_at=now if text is not None else None,
    )
    session.add(handoff)
    session.flush()
    if events:
        event_outbox.record(session, event_outbox.HANDOFF_REQUESTED, requested_event(handoff), now)
    return handoff, True


def requested_event(handoff: Handoff) -> dict[str, Any]:
    """The ``data`` of ``handoff.requested``."""
    return {
        "user": handoff.user_key,
        "phone": handoff.phone_number,
        "user_id": handoff.user_id,
        "template": handoff.template_name,
        "step": handoff.step,
        "since": handoff.requested_at.isoformat().replace("+00:00", "Z"),
        "last_message": handoff.last_message,
    }


def keep_waiting(session: Session, user_key: str, text: str | None, now: datetime) -> bool:
    """Count a customer's message on their open handoff; False when they are not handed off.

    The message itself is already in ``inbound_messages``; the transcript reads it there.
    """
    values: dict[str, Any] = {"waiting": Handoff.waiting + 1, "last_customer_at": now}
    if text is not None:
        values["last_message"] = text
    result = session.execute(
        update(Handoff).where(Handoff.user_key == user_key, Handoff.released_at.is_(None)).values(**values)
    )
    return bool(result.rowcount)


def waiting_list(session: Session, limit: int = 500) -> list[Waiting]:
    """Customers handed off and not released, oldest handoff first."""
    rows = session.execute(
        select(Handoff.user_key, Handoff.requested_at, Handoff.last_message, Handoff.waiting)
        .where(Handoff.released_at.is_(None))
        .order_by(Handoff.requested_at, Handoff.id)
        .limit(limit)
    ).all()
    return [Waiting(row.user_key, row.requested_at, row.last_message, row.waiting) for row in rows]


def waiting_summary(session: Session, now: datetime) -> tuple[int, float]:
    """How many customers are handed off, and how long the oldest has been (seconds; 0 if none)."""
    count, oldest = session.execute(
        select(func.count(), func.min(Handoff.requested_at)).where(Handoff.released_at.is_(None))
    ).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite's min() gives back text the column type never sees
        oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=now.tzinfo)
    return int(count), max((now - oldest).total_seconds(), 0.0)


def window_open(session: Session, user_key: str, now: datetime, phone_number_id: str | None = None) -> bool:
    """Whether a free-form message may go to the customer: they wrote in the last 24 hours.

    The window on ``phone_number_id`` is the one notifications use (``conversation.window``);
    a customer with no window recorded there is judged by their latest stored message.
    """
    last = window.last_inbound(session, user_key, phone_number_id) if phone_number_id is not None else None
    if last is None:
        last = session.scalar(select(func.max(InboundMessage.received_at)).where(InboundMessage.user_key == user_key))
    if last is not None and last.tzinfo is None:  # SQLite's max() gives back text the column type never sees
        last = datetime.fromisoformat(str(last)).replace(tzinfo=now.tzinfo)
    return window.is_open(last, now)


def valid_reply(text: str) -> bool:
    """1 to MAX_REPLY characters that Postgres can store (no NUL, no lone surrogate)."""
    if not text or len(text) > MAX_REPLY or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reply(session: Session, user_key: str, text: str, now: datetime) -> int:
    """Queue a person's message to a handed-off customer in the outbox; returns its row id.

    Takes the customer's ``contacts`` row lock first, as the turn writer does, so the reply
    is ordered with the bot's rows and a sender renewing its lease waits for this commit.
    The caller hands the customer to a sender after committing. Raises NotHandedOff or
    WindowClosed, and ValueError for an empty or too long text.
    """
    body = text.strip()
    if not valid_reply(body):
        raise ValueError(f"text must be 1 to {MAX_REPLY} characters of text")
    session.execute(select(Contact.user_key).where(Contact.user_key == user_key).with_for_update())
    handoff = session.scalar(
        select(Handoff).where(Handoff.user_key == user_key, Handoff.released_at.is_(None)).with_for_update()
    )
    if handoff is None:
        raise NotHandedOff(user_key)
    if not window_open(session, user_key, now, handoff.phone_number_id):
        raise WindowClosed(user_key)
    row = OutboundMessage(
        user_key=user_key,
        phone_number_id=handoff.phone_number_id,
        to_phone=handoff.phone_number,
        to_user_id=handoff.user_id,
        kind="message",
        content={"type": "text", "text": {"body": body, "preview_url": False}},
        status="pending",
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    handoff.last_person_at = now
    handoff.waiting = 0
    session.flush()
    return row.id


def release(
    session: Session, user_key: str, now: datetime, reason: str = "person", quiet_since: datetime | None = None
) -> bool:
    """Give the customer back to the bot; False when they were not handed off (or, with
    ``quiet_since``, when a person wrote to them after it).

    Takes the customer's ``contacts`` row lock first, as the turn writer and ``reply`` do:
    a message being handled waits for the release, or the release for it, never both at
    once. Any conversation row left for them goes too: their next message is handled as
    if no conversation were live.
    """
    session.execute(select(Contact.user_key).where(Contact.user_key == user_key).with_for_update())
    still_open = [Handoff.user_key == user_key, Handoff.released_at.is_(None)]
    if quiet_since is not None:
        still_open.append(func.coalesce(Handoff.last_person_at, Handoff.requested_at) <= quiet_since)
    result = session.execute(update(Handoff).where(*still_open).values(released_at=now, release_reason=reason))
    if not result.rowcount:
        return False
    session.execute(delete(ConversationState).where(ConversationState.user_key == user_key))
    return True


def requested_per_flow(session: Session, since: datetime) -> dict[str | None, int]:
    """Handoffs requested since ``since`` by flow (None: the global handoff word)."""
    rows = session.execute(
        select(Handoff.template_name, func.count()).where(Handoff.requested_at >= since).group_by(Handoff.template_name)
    ).all()
    return {name: int(count) for name, count in rows}


def prune(session: Session, older_than: datetime) -> int:
    """Drop released handoffs past retention (they hold a customer's last message); open ones stay."""
    return session.execute(delete(Handoff).where(Handoff.released_at < older_than)).rowcount


def release_lapsed(session: Session, now: datetime, timeout: timedelta, limit: int = 1000) -> list[str]:
    """Release every handoff without a person's message for ``timeout``; returns their customers.

    The candidates are read without a lock; each release locks its customer (contacts row
    first, like every writer of a turn) and checks the timeout again under that lock, so a
    person's reply committed meanwhile keeps the handoff open.
    """
    cutoff = now - timeout
    quiet = func.coalesce(Handoff.last_person_at, Handoff.requested_at)
    keys = list(
        session.scalars(
            select(Handoff.user_key)
            .where(Handoff.released_at.is_(None), quiet <= cutoff)
            .order_by(Handoff.requested_at, Handoff.user_key)
            .limit(limit)
        )
    )
    return [key for key in keys if release(session, key, now, reason="timeout", quiet_since=cutoff)]
