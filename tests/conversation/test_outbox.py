"""Delivery statuses on the outbox rows they update (conversation/outbox.py), on the real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation.events import StatusEvent
from conversation.models import OutboundMessage, utcnow
from conversation.outbox import apply_status, prune

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.postgres


def sent_row(session: Session, wamid: str, status: str = "accepted") -> OutboundMessage:
    row = OutboundMessage(
        user_key="15550001111",
        phone_number_id="PNID",
        to_phone="15550001111",
        kind="message",
        content={"type": "text", "text": {"body": "hi"}},
        status=status,
        wamid=wamid,
        created_at=T0,
        updated_at=T0,
    )
    session.add(row)
    session.flush()
    return row


def receipt(wamid: str, status: str, minutes: int, code: int | None = None) -> StatusEvent:
    return StatusEvent(wamid, status, T0 + timedelta(minutes=minutes), "15550001111", code, "why" if code else None)


def test_statuses_only_move_forward(db_session: Session) -> None:
    row = sent_row(db_session, "wamid.OUT1")
    assert apply_status(db_session, receipt("wamid.OUT1", "delivered", 2)) == "applied"
    assert apply_status(db_session, receipt("wamid.OUT1", "sent", 1)) == "stale"  # arrived late
    assert apply_status(db_session, receipt("wamid.OUT1", "read", 3)) == "applied"
    assert (row.status, row.status_at) == ("read", T0 + timedelta(minutes=3))


def test_failed_replaces_sent_but_never_delivered(db_session: Session) -> None:
    sent = sent_row(db_session, "wamid.OUT2", status="sent")
    assert apply_status(db_session, receipt("wamid.OUT2", "failed", 1, code=131047)) == "applied"
    assert (sent.status, sent.last_error_code, sent.last_error) == ("failed", 131047, "why")
    assert apply_status(db_session, receipt("wamid.OUT2", "delivered", 2)) == "stale"  # failed is final

    delivered = sent_row(db_session, "wamid.OUT3", status="delivered")
    assert apply_status(db_session, receipt("wamid.OUT3", "failed", 1, code=131026)) == "stale"
    assert delivered.status == "delivered" and delivered.last_error_code is None


def test_unknown_rows_and_statuses(db_session: Session) -> None:
    sent_row(db_session, "wamid.OUT4")
    assert apply_status(db_session, receipt("wamid.NOT.OURS", "read", 1)) == "unknown"
    assert apply_status(db_session, receipt("wamid.OUT4", "deleted", 1)) == "ignored"


def test_prune_keeps_a_notifications_idempotency_key_for_eight_days_whatever_the_retention(db_session: Session) -> None:
    now = utcnow()
    reply, notice, old_notice = (sent_row(db_session, f"wamid.P{i}") for i in range(3))
    for row, age in ((reply, timedelta(days=3)), (notice, timedelta(days=3)), (old_notice, timedelta(days=9))):
        row.created_at = now - age
    notice.idempotency_key, old_notice.idempotency_key = "order_ready:ORD-1", "order_ready:ORD-0"
    db_session.flush()
    counts = prune(db_session, older_than=now - timedelta(days=1))  # a retention of one day
    assert counts["outbound"] == 2
    kept = db_session.scalars(select(OutboundMessage.idempotency_key).where(OutboundMessage.wamid.like("wamid.P%")))
    assert list(kept) == ["order_ready:ORD-1"]
