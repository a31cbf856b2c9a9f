"""The 24-hour customer service window: its arithmetic (pure), and its record on Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from conversation import window

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_open_for_exactly_24_hours_after_the_customer_wrote() -> None:
    assert window.is_open(T0, T0)
    assert window.is_open(T0, T0 + timedelta(hours=23, minutes=59, seconds=59))
    assert not window.is_open(T0, T0 + timedelta(hours=24))
    assert not window.is_open(T0, T0 + timedelta(days=3))
    assert window.closes_at(T0) == T0 + timedelta(hours=24)


def test_a_customer_who_never_wrote_has_no_open_window() -> None:
    assert not window.is_open(None, T0)


def test_the_window_opens_when_the_message_was_sent_not_when_it_arrived() -> None:
    late = T0 + timedelta(hours=30)  # Meta redelivered it a day later
    assert window.opened_at(T0, late) == T0
    assert not window.is_open(window.opened_at(T0, late), late)
    skewed = T0 + timedelta(minutes=5)  # a sender clock ahead of ours counts as now
    assert window.opened_at(skewed, T0) == T0
    assert window.opened_at(None, T0) == T0


def test_a_window_shows_when_it_closes() -> None:
    shown = window.Window("100000000000001", T0).as_dict(T0 + timedelta(hours=1))
    assert shown == {
        "phone_number_id": "100000000000001",
        "last_inbound_at": T0.isoformat(),
        "closes_at": (T0 + timedelta(hours=24)).isoformat(),
        "open": True,
    }


@pytest.mark.postgres
def test_record_keeps_the_latest_message_per_customer_and_number(db_session: Session) -> None:
    window.record_inbound(db_session, "15550001111", "111", T0)
    window.record_inbound(db_session, "15550001111", "111", T0 + timedelta(hours=2))
    window.record_inbound(db_session, "15550001111", "111", T0 + timedelta(hours=1))  # a late redelivery
    window.record_inbound(db_session, "15550001111", "222", T0 - timedelta(hours=5))
    window.record_inbound(db_session, "15550002222", "111", T0 + timedelta(hours=9))
    assert window.last_inbound(db_session, "15550001111", "111") == T0 + timedelta(hours=2)
    assert window.last_inbound(db_session, "15550001111", "333") is None
    assert [(w.phone_number_id, w.last_inbound_at) for w in window.windows(db_session, "15550001111")] == [
        ("111", T0 + timedelta(hours=2)),
        ("222", T0 - timedelta(hours=5)),
    ]


def test_only_a_template_may_go_once_the_window_has_closed() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    text = {"type": "text", "text": {"body": "hi"}}
    template = {"type": "template", "template": {"name": "order_ready", "language": {"code": "en_US"}}}
    assert window.refusal(text, now - timedelta(hours=23), now) is None
    closed = window.refusal(text, now - timedelta(hours=25), now)
    assert closed == "the 24-hour customer service window closed at 2026-12-03T11:00:00+00:00"
    assert "never wrote" in (window.refusal(text, None, now) or "")
    assert (
        window.refusal(template, None, now) is None and window.refusal(template, now - timedelta(days=9), now) is None
    )
