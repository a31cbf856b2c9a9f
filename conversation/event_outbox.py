"""Events out: recorded with the unit of work that caused them, delivered later, once per id.

Recording is one insert in the caller's transaction, so an event exists exactly when what it
tells of was committed, and a customer's turn never waits on the receiving endpoint. Delivery
(worker/event_delivery.py) takes due rows, posts them outside any transaction and settles
each: delivered, or due again after a backoff. Nothing is dropped while the endpoint is down;
a repeat after a crash between the POST and its settlement carries the same
``X-Parley-Event-Id``, which the receiver uses to ignore it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from conversation.handoff_models import OutgoingEvent
from conversation.models import OutboundMessage

HANDOFF_REQUESTED = "handoff.requested"
FLOW_COMPLETED = "flow.completed"
MESSAGE_FAILED = "message.failed"
KINDS = (HANDOFF_REQUESTED, FLOW_COMPLETED, MESSAGE_FAILED)

SIGNATURE_HEADER = "X-Parley-Signature-256"
ID_HEADER = "X-Parley-Event-Id"
# Longer than one POST may take (connect + read timeout): another deliverer skips a row
# while its attempt is in flight, and retakes it if that deliverer died.
LEASE = timedelta(seconds=60)
FIRST_RETRY = timedelta(seconds=5)
MAX_BACKOFF = timedelta(hours=1)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Parley-Signature-256`` value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver checks, in constant time."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def record(session: Session, kind: str, data: dict[str, Any], now: datetime) -> uuid.UUID:
    """Add an event to the outbox in the caller's transaction; returns its id.

    The caller decides whether events are wanted at all (``Settings.events_url``): without
    a receiver nothing should pile up here.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    event_id = uuid.uuid4()
    body = json.dumps(
        {"id": str(event_id), "type": kind, "created_at": _iso(now), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )
    session.add(OutgoingEvent(event_id=event_id, kind=kind, body=body, next_attempt_at=now, created_at=now))
    session.flush()
    return event_id


@dataclass(frozen=True)
class Attempt:
    """A row taken for one POST, detached from the session that took it."""

    id: int
    event_id: uuid.UUID
    kind: str
    body: bytes
    attempts: int


def take_due(session: Session, now: datetime, limit: int = 50) -> list[Attempt]:
    """Lease up to ``limit`` due events, oldest first; competing deliverers skip each other's rows.

    The lease is ``next_attempt_at`` moved past the attempt, so it survives this transaction
    (commit it before posting) and runs out by itself if the deliverer dies.
    """
    rows = session.execute(
        select(OutgoingEvent.id, OutgoingEvent.event_id, OutgoingEvent.kind, OutgoingEvent.body, OutgoingEvent.attempts)
        .where(OutgoingEvent.status == "pending", OutgoingEvent.next_attempt_at <= now)
        .order_by(OutgoingEvent.next_attempt_at, OutgoingEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return []
    session.execute(
        update(OutgoingEvent)
        .where(OutgoingEvent.id.in_([row.id for row in rows]))
        .values(next_attempt_at=now + LEASE, attempts=OutgoingEvent.attempts + 1)
    )
    return [Attempt(row.id, row.event_id, row.kind, row.body.encode(), row.attempts + 1) for row in rows]


def backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: 5 s, doubling, at most an hour."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


def delivered(session: Session, attempt: Attempt, now: datetime) -> None:
    session.execute(
        update(OutgoingEvent)
        .where(OutgoingEvent.id == attempt.id)
        .values(status="delivered", delivered_at=now, last_error=None)
    )


def failed(session: Session, attempt: Attempt, error: str, now: datetime) -> datetime:
    """The attempt did not land: due again after the backoff; returns when."""
    at = now + backoff(attempt.attempts)
    session.execute(
        update(OutgoingEvent)
        .where(OutgoingEvent.id == attempt.id, OutgoingEvent.status == "pending")
        .values(next_attempt_at=at, last_error=error[:500])
    )
    return at


def pending_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OutgoingEvent).where(OutgoingEvent.status == "pending")) or 0


def prune(session: Session, older_than: datetime) -> int:
    """Drop delivered events past retention; pending ones are never dropped."""
    return session.execute(
        delete(OutgoingEvent).where(OutgoingEvent.status == "delivered", OutgoingEvent.delivered_at < older_than)
    ).rowcount


# --- what each event carries ----------------------------------------------------------------


def flow_completed(template: str, user_key: str, submission_id: uuid.UUID, answers: dict[str, Any]) -> dict[str, Any]:
    return {"user": user_key, "template": template, "submission_id": str(submission_id), "answers": answers}


def message_failed(user_key: str, message_id: int, code: int | None, error: str) -> dict[str, Any]:
    return {"user": user_key, "message_id": message_id, "code": code, "error": error}


def record_message_failed(
    session: Session, message_id: int, code: int | None, error: str | None, now: datetime
) -> bool:
    """Record ``message.failed`` for outbox row ``message_id`` when it is a message (a read
    receipt that fails is nobody's business); True when recorded."""
    row = session.execute(
        select(OutboundMessage.user_key, OutboundMessage.kind).where(OutboundMessage.id == message_id)
    ).first()
    if row is None or row.kind != "message":
        return False
    record(session, MESSAGE_FAILED, message_failed(row.user_key, message_id, code, error or ""), now)
    return True
