"""The outbox: replies committed with the step that produced them, sent in order per user.

One sender at a time per customer holds a lease on their ``contacts`` row, so replies go
out in the order they were written even with many sender processes; a crashed sender's
lease simply runs out. The sender (worker/sender.py) composes these inside its own
transactions: one to take a batch, one per reply to settle it and take the next. The
status webhooks then move a sent row along (``apply_status``), never backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from conversation import event_outbox
from conversation.events import StatusEvent
from conversation.models import Contact, CustomerWindow, InboundMessage, OutboundMessage, SandboxMessage, utcnow

LEASE = timedelta(seconds=60)
OPEN = ("pending", "sending")
FINAL = ("accepted", "sent", "delivered", "read", "played", "failed")
# Delivery statuses only move forward; "failed" may replace accepted/sent, never delivered/read.
STATUS_RANK = {"pending": 0, "sending": 0, "accepted": 1, "sent": 2, "delivered": 3, "read": 4, "played": 4}


# The sender's statements are built once and run on the session's connection: through
# Session.execute each would cost ~0.3 ms more of ORM bookkeeping these rows never need.
_ACQUIRE = (
    update(Contact)
    .where(Contact.user_key == bindparam("k"))
    .where(or_(Contact.sender_lease_until.is_(None), Contact.sender_lease_until <= bindparam("now")))
    .values(sender_lease_until=bindparam("until"))
)
_SET_LEASE = update(Contact).where(Contact.user_key == bindparam("k")).values(sender_lease_until=bindparam("until"))
_CLEAR_HOLD = (
    update(Contact)
    .where(Contact.user_key == bindparam("k"), Contact.pair_limit_hits > 0)
    .values(send_not_before=None, pair_limit_hits=0)
)


def acquire_lease(session: Session, user_key: str, now: datetime) -> bool:
    """Become this customer's only sender until the lease runs out or is released."""
    result = session.connection().execute(_ACQUIRE, {"k": user_key, "now": now, "until": now + LEASE})
    return bool(result.rowcount)


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
    last_inbound_at: datetime | None = None  # the customer's last message to this number: their window


@dataclass(frozen=True)
class Wait:
    """The customer's next row may not go before ``until`` (backoff or pair limit)."""

    until: datetime


@dataclass(frozen=True)
class Accepted:
    job_id: int
    wamid: str | None


@dataclass(frozen=True)
class Failed:
    job_id: int
    code: int | None
    error: str


@dataclass(frozen=True)
class Retry:
    """Send again at ``at``; ``hold`` also holds every later row (pair rate limit, 131056)."""

    job_id: int
    code: int | None
    error: str
    at: datetime
    hold: bool = False


Outcome = Accepted | Failed | Retry

_JOB_COLUMNS = (
    OutboundMessage.id,
    OutboundMessage.kind,
    OutboundMessage.phone_number_id,
    OutboundMessage.to_phone,
    OutboundMessage.to_user_id,
    OutboundMessage.content,
    OutboundMessage.attempts,
    OutboundMessage.inbound_wamid,
    OutboundMessage.created_at,
    OutboundMessage.next_attempt_at,
    select(CustomerWindow.last_inbound_at)
    .where(
        CustomerWindow.user_key == OutboundMessage.user_key,
        CustomerWindow.phone_number_id == OutboundMessage.phone_number_id,
    )
    .scalar_subquery()
    .label("last_inbound_at"),
)


_TAKE = (
    select(*_JOB_COLUMNS, Contact.send_not_before)
    .outerjoin(Contact, Contact.user_key == OutboundMessage.user_key)
    .where(OutboundMessage.user_key == bindparam("k"), OutboundMessage.status.in_(OPEN))
    .order_by(OutboundMessage.id)
    .limit(20)  # a batch ends at its first reply; this only bounds a long run of read receipts
    .with_for_update(of=OutboundMessage)
)
_MARK_SENDING = (
    update(OutboundMessage)
    .where(OutboundMessage.id.in_(bindparam("ids", expanding=True)))
    .values(status="sending", attempts=OutboundMessage.attempts + 1, updated_at=bindparam("now"))
)
_table = OutboundMessage.__table__
_ACCEPT = (
    _table.update()
    .where(_table.c.id == bindparam("job_id"))
    .values(
        # A status webhook may already have moved the row further; only an open row takes "accepted".
        status=case(*((_table.c.status == state, "accepted") for state in OPEN), else_=_table.c.status),
        wamid=func.coalesce(bindparam("new_wamid"), _table.c.wamid),
        last_error=None,
        last_error_code=None,
        updated_at=bindparam("now"),
    )
)


def take(session: Session, user_key: str, now: datetime) -> list[Job] | Wait | None:
    """Mark the customer's next rows ``sending`` and return them, oldest first; None when all is sent.

    The caller holds the lease. A batch runs up to and including the first ``message`` row
    (the read receipts before it ride along), so each reply's wamid is committed before the
    next reply goes. Never skips ahead: while the oldest row waits for a retry, later ones wait too.
    """
    found = session.connection().execute(_TAKE, {"k": user_key}).all()
    if not found:
        return None
    hold = found[0].send_not_before
    if hold is not None and hold > now:
        return Wait(hold)
    batch: list[Job] = []
    for row in found:
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            break
        batch.append(Job(row.id, row.kind, row.phone_number_id, row.to_phone, row.to_user_id,
                         dict(row.content), row.attempts + 1, row.inbound_wamid, row.created_at,
                         row.last_inbound_at))  # fmt: skip
        if row.kind == "message":
            break
    if not batch:
        return Wait(found[0].next_attempt_at)
    session.connection().execute(_MARK_SENDING, {"ids": [job.id for job in batch], "now": now})
    return batch


def settle(session: Session, user_key: str, outcomes: list[Outcome], now: datetime, events: bool = False) -> None:
    """Store what Graph answered for each sent row; a status webhook may already have moved one further.

    With ``events`` a message that failed for good is told to ``PARLEY_EVENTS_URL``.
    """
    conn = session.connection()
    accepted = [{"job_id": o.job_id, "new_wamid": o.wamid, "now": now} for o in outcomes if isinstance(o, Accepted)]
    if accepted:
        conn.execute(_ACCEPT, accepted)
        conn.execute(_CLEAR_HOLD, {"k": user_key})  # a reply went through: a pair-rate-limit hold is over
    for outcome in outcomes:
        if isinstance(outcome, Failed):
            conn.execute(
                update(OutboundMessage)
                .where(OutboundMessage.id == outcome.job_id)
                .values(status="failed", last_error_code=outcome.code, last_error=outcome.error[:500], updated_at=now)
            )
            if events:
                event_outbox.record_message_failed(session, outcome.job_id, outcome.code, outcome.error[:500], now)
        elif isinstance(outcome, Retry):
            conn.execute(
                update(OutboundMessage)
                .where(OutboundMessage.id == outcome.job_id)
                .values(
                    status="pending",
                    next_attempt_at=outcome.at,
                    last_error_code=outcome.code,
                    last_error=outcome.error[:500],
                    updated_at=now,
                )
            )
            if outcome.hold:
                conn.execute(
                    update(Contact)
                    .where(Contact.user_key == user_key)
                    .values(send_not_before=outcome.at, pair_limit_hits=Contact.pair_limit_hits + 1)
                )


def keep_lease(session: Session, user_key: str, now: datetime) -> bool:
    """Renew the lease; the row lock it takes also waits for any transaction adding rows for this
    customer (they lock the same ``contacts`` row), so the next ``take`` sees them. False when
    the customer has no ``contacts`` row under ``user_key`` any more (they moved to a new identity)."""
    return bool(session.connection().execute(_SET_LEASE, {"k": user_key, "until": now + LEASE}).rowcount)


def release_lease(session: Session, user_key: str) -> None:
    session.connection().execute(_SET_LEASE, {"k": user_key, "until": None})


def apply_status(session: Session, status: StatusEvent, events: bool = False) -> str:
    """Record a delivery receipt on our outbound row; returns what happened (for logs and metrics).

    With ``events`` a message Meta reports as failed is told to ``PARLEY_EVENTS_URL``.
    """
    row = session.scalar(select(OutboundMessage).where(OutboundMessage.wamid == status.wamid).with_for_update())
    if row is None:
        return "unknown"
    if status.status == "failed":
        if STATUS_RANK.get(row.status, 0) >= STATUS_RANK["delivered"]:
            return "stale"
        row.status = "failed"
        row.last_error_code = status.error_code
        row.last_error = status.error_title
        if events:
            event_outbox.record_message_failed(session, row.id, status.error_code, status.error_title, utcnow())
    elif status.status in STATUS_RANK:
        if row.status == "failed" or STATUS_RANK[status.status] <= STATUS_RANK.get(row.status, 0):
            return "stale"
        row.status = status.status
    else:
        return "ignored"
    row.status_at = status.timestamp
    row.updated_at = utcnow()
    return "applied"


def pair_limit_hits(session: Session, user_key: str) -> int:
    return session.scalar(select(Contact.pair_limit_hits).where(Contact.user_key == user_key)) or 0


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


# A notification's row is its idempotency key: a client retrying days later (after an
# outage, from a queue of its own) must find it, not send again. Kept at least this long
# whatever the retention, beyond Meta's own webhook retries of up to 7 days.
KEEP_IDEMPOTENCY_KEYS = timedelta(days=8)


def prune(session: Session, older_than: datetime) -> dict[str, int]:
    """Drop message logs past retention; open outbox rows are never pruned, keyed ones
    (notifications) not before KEEP_IDEMPOTENCY_KEYS."""
    counts = {}
    counts["inbound"] = session.execute(delete(InboundMessage).where(InboundMessage.received_at < older_than)).rowcount
    keys_until = min(older_than, utcnow() - KEEP_IDEMPOTENCY_KEYS)
    counts["outbound"] = session.execute(
        delete(OutboundMessage).where(
            OutboundMessage.created_at < older_than,
            OutboundMessage.status.in_(FINAL),
            or_(OutboundMessage.idempotency_key.is_(None), OutboundMessage.created_at < keys_until),
        )
    ).rowcount
    counts["sandbox"] = session.execute(delete(SandboxMessage).where(SandboxMessage.created_at < older_than)).rowcount
    return counts
