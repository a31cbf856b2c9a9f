"""The outbox: replies committed with the step that produced them, sent in order per user.

One sender at a time per customer holds a lease on their ``contacts`` row, so replies go
out in the order they were written even with many sender processes; a crashed sender's
lease simply runs out. Each function here is one short transaction's worth of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from conversation.models import Contact, InboundMessage, OutboundMessage, SandboxMessage

LEASE = timedelta(seconds=60)
OPEN = ("pending", "sending")
FINAL = ("accepted", "sent", "delivered", "read", "played", "failed")


def acquire_lease(session: Session, user_key: str, now: datetime) -> bool:
    """Become this customer's only sender until the lease runs out or is released."""
    result = session.execute(
        update(Contact)
        .where(Contact.user_key == user_key)
        .where(or_(Contact.sender_lease_until.is_(None), Contact.sender_lease_until <= now))
        .values(sender_lease_until=now + LEASE)
    )
    return bool(result.rowcount)


def renew_lease(session: Session, user_key: str, now: datetime) -> None:
    session.execute(update(Contact).where(Contact.user_key == user_key).values(sender_lease_until=now + LEASE))


def release_lease(session: Session, user_key: str) -> None:
    session.execute(update(Contact).where(Contact.user_key == user_key).values(sender_lease_until=None))


@dataclass(frozen=True)
class Job:
    """A row taken for sending, detached from the session that took it."""

    id: int
    kind: str
    phone_number_id: str
    to_phone: str | None
    to_user_id: str | None
    content: dict[str, Any]
    attempts: int
    inbound_wamid: str | None = None  # the customer message it answers: logs' correlation id
    created_at: datetime | None = None  # reply latency is measured from here


@dataclass(frozen=True)
class Wait:
    """The customer's next row may not go before ``until`` (backoff or pair limit)."""

    until: datetime


def take_next(session: Session, user_key: str, now: datetime) -> Job | Wait | None:
    """Mark the customer's oldest open row as sending and return it; None when all is sent.

    Never skips ahead: while the oldest row waits for a retry, later ones wait too.
    """
    row = session.scalar(
        select(OutboundMessage)
        .where(OutboundMessage.user_key == user_key, OutboundMessage.status.in_(OPEN))
        .order_by(OutboundMessage.id)
        .limit(1)
        .with_for_update()
    )
    if row is None:
        return None
    contact = session.get(Contact, user_key)
    not_before = max(
        (t for t in (row.next_attempt_at, contact.send_not_before if contact else None) if t is not None),
        default=None,
    )
    if not_before is not None and not_before > now:
        return Wait(not_before)
    row.status = "sending"
    row.attempts += 1
    row.updated_at = now
    return Job(
        row.id,
        row.kind,
        row.phone_number_id,
        row.to_phone,
        row.to_user_id,
        dict(row.content),
        row.attempts,
        row.inbound_wamid,
        row.created_at,
    )


def mark_accepted(session: Session, job_id: int, wamid: str | None, now: datetime) -> None:
    row = session.get(OutboundMessage, job_id, with_for_update=True)
    if row is None:
        return
    # A status webhook may already have moved it further; only a fresh row takes "accepted".
    if row.status in OPEN:
        row.status = "accepted"
    row.wamid = wamid or row.wamid
    row.last_error = None
    row.last_error_code = None
    row.updated_at = now


def mark_retry(session: Session, job_id: int, code: int | None, error: str, at: datetime, now: datetime) -> None:
    row = session.get(OutboundMessage, job_id, with_for_update=True)
    if row is None:
        return
    row.status = "pending"
    row.next_attempt_at = at
    row.last_error_code = code
    row.last_error = error[:500]
    row.updated_at = now


def mark_failed(session: Session, job_id: int, code: int | None, error: str, now: datetime) -> None:
    row = session.get(OutboundMessage, job_id, with_for_update=True)
    if row is None:
        return
    row.status = "failed"
    row.last_error_code = code
    row.last_error = error[:500]
    row.updated_at = now


def hold_user(session: Session, user_key: str, until: datetime) -> None:
    """Pair rate limit (131056): nothing more to this customer before ``until``."""
    session.execute(
        update(Contact)
        .where(Contact.user_key == user_key)
        .values(send_not_before=until, pair_limit_hits=Contact.pair_limit_hits + 1)
    )


def clear_hold(session: Session, user_key: str) -> None:
    session.execute(
        update(Contact)
        .where(Contact.user_key == user_key, Contact.pair_limit_hits > 0)
        .values(send_not_before=None, pair_limit_hits=0)
    )


def pair_limit_hits(session: Session, user_key: str) -> int:
    contact = session.get(Contact, user_key)
    return contact.pair_limit_hits if contact else 0


def has_open(session: Session, user_key: str) -> bool:
    return (
        session.scalar(
            select(OutboundMessage.id)
            .where(OutboundMessage.user_key == user_key, OutboundMessage.status.in_(OPEN))
            .limit(1)
        )
        is not None
    )


def users_to_sweep(session: Session, now: datetime, grace: timedelta, limit: int = 1000) -> list[str]:
    """Customers with rows that should have gone by now: a crash between commit and
    hand-off, a sender that died mid-send, or a retry whose time has come."""
    cutoff = now - grace
    stmt = (
        select(OutboundMessage.user_key)
        .where(OutboundMessage.status.in_(OPEN))
        .where(OutboundMessage.updated_at <= cutoff)
        .where(or_(OutboundMessage.next_attempt_at.is_(None), OutboundMessage.next_attempt_at <= now))
        .group_by(OutboundMessage.user_key)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def prune(session: Session, older_than: datetime) -> dict[str, int]:
    """Drop message logs past retention; open outbox rows are never pruned."""
    counts = {}
    counts["inbound"] = session.execute(delete(InboundMessage).where(InboundMessage.received_at < older_than)).rowcount
    counts["outbound"] = session.execute(
        delete(OutboundMessage).where(OutboundMessage.created_at < older_than, OutboundMessage.status.in_(FINAL))
    ).rowcount
    counts["sandbox"] = session.execute(delete(SandboxMessage).where(SandboxMessage.created_at < older_than)).rowcount
    return counts
