"""Handing a customer to a person, on the real Postgres: request, waiting, reply, release, timeout."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conversation import event_outbox, handoff
from conversation.db import make_engine
from conversation.handoff_models import Handoff, OutgoingEvent
from conversation.models import Contact, ConversationState, InboundMessage, OutboundMessage
from conversation.transcript import transcript
from tests.support.database import migrate

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ANN = handoff.Customer("15550001111", "15550001111", None, "PNID")
BEA = handoff.Customer("US.13491208655302741918", None, "US.13491208655302741918", "PNID")


def wrote(session: Session, customer: handoff.Customer, text: str, at: datetime) -> None:
    """What the inbound path stores of a customer's message: the contact and the message log."""
    if session.get(Contact, customer.user_key) is None:
        session.add(Contact(user_key=customer.user_key, phone_number=customer.phone_number, user_id=customer.user_id))
    session.add(
        InboundMessage(
            wamid=f"wamid.{customer.user_key}.{at.timestamp()}",
            user_key=customer.user_key,
            phone_number_id=customer.phone_number_id,
            message_type="text",
            received_at=at,
            payload={"type": "text", "text": {"body": text}},
        )
    )
    session.flush()


def test_a_request_opens_one_handoff_and_counts_what_the_customer_writes(db_session: Session) -> None:
    first, new = handoff.request(db_session, ANN, T0, template="support", step="agent", text="Contact us")
    assert new and first.waiting == 1 and first.last_message == "Contact us"
    again, new = handoff.request(db_session, ANN, T0 + timedelta(minutes=1), text="agent")
    assert not new and again.id == first.id
    assert handoff.keep_waiting(db_session, ANN.user_key, "anyone there?", T0 + timedelta(minutes=2))
    db_session.refresh(first)
    assert (first.waiting, first.last_message, first.last_customer_at) == (
        3,
        "anyone there?",
        T0 + timedelta(minutes=2),
    )
    assert not handoff.keep_waiting(db_session, BEA.user_key, "hello", T0)


def test_the_database_refuses_a_second_open_handoff(db_session: Session) -> None:
    handoff.request(db_session, ANN, T0)
    db_session.add(Handoff(user_key=ANN.user_key, phone_number_id="PNID", requested_at=T0))
    with pytest.raises(IntegrityError):
        db_session.flush()


def test_released_handoffs_stay_as_history_and_a_new_one_can_open(db_session: Session) -> None:
    handoff.request(db_session, ANN, T0)
    assert handoff.release(db_session, ANN.user_key, T0 + timedelta(minutes=5))
    assert not handoff.release(db_session, ANN.user_key, T0 + timedelta(minutes=6))
    _, new = handoff.request(db_session, ANN, T0 + timedelta(hours=1))
    assert new
    rows = db_session.scalars(select(Handoff).where(Handoff.user_key == ANN.user_key).order_by(Handoff.id)).all()
    assert [(r.released_at is None, r.release_reason) for r in rows] == [(False, "person"), (True, None)]


def test_the_waiting_list_is_oldest_first_and_leaves_out_released_customers(db_session: Session) -> None:
    handoff.request(db_session, BEA, T0 + timedelta(minutes=3), text="help me")
    handoff.request(db_session, ANN, T0, text="Contact us")
    handoff.request(db_session, handoff.Customer("15550002222", "15550002222", None, "PNID"), T0 + timedelta(minutes=1))
    handoff.release(db_session, "15550002222", T0 + timedelta(minutes=4))
    waiting = handoff.waiting_list(db_session)
    assert [(w.user, w.since, w.last_message, w.waiting) for w in waiting] == [
        (ANN.user_key, T0, "Contact us", 1),
        (BEA.user_key, T0 + timedelta(minutes=3), "help me", 1),
    ]
    assert handoff.waiting_summary(db_session, T0 + timedelta(minutes=10)) == (2, 600.0)


def test_the_summary_of_nobody_waiting_is_zero(db_session: Session) -> None:
    assert handoff.waiting_summary(db_session, T0) == (0, 0.0)


def test_a_persons_reply_goes_to_the_outbox_addressed_like_a_bot_reply(db_session: Session) -> None:
    wrote(db_session, BEA, "Contact us", T0)
    handoff.request(db_session, BEA, T0, text="Contact us")
    row_id = handoff.reply(db_session, BEA.user_key, "  Hi, this is Carla.  ", T0 + timedelta(minutes=1))
    row = db_session.get(OutboundMessage, row_id)
    assert row is not None
    assert (row.user_key, row.phone_number_id, row.to_phone, row.to_user_id, row.kind, row.status) == (
        BEA.user_key,
        "PNID",
        None,
        BEA.user_id,
        "message",
        "pending",
    )
    assert row.content == {"type": "text", "text": {"body": "Hi, this is Carla.", "preview_url": False}}
    open_row = handoff.open_handoff(db_session, BEA.user_key)
    assert open_row is not None and (open_row.waiting, open_row.last_person_at) == (0, T0 + timedelta(minutes=1))


def test_no_reply_outside_the_24_hour_window_or_to_a_customer_not_handed_off(db_session: Session) -> None:
    wrote(db_session, ANN, "Contact us", T0)
    with pytest.raises(handoff.NotHandedOff):
        handoff.reply(db_session, ANN.user_key, "hello", T0)
    handoff.request(db_session, ANN, T0)
    assert handoff.window_open(db_session, ANN.user_key, T0 + timedelta(hours=23, minutes=59))
    with pytest.raises(handoff.WindowClosed):
        handoff.reply(db_session, ANN.user_key, "sorry for the wait", T0 + timedelta(hours=24))
    for text in ("   ", "x" * (handoff.MAX_REPLY + 1)):
        with pytest.raises(ValueError):
            handoff.reply(db_session, ANN.user_key, text, T0 + timedelta(hours=1))
    assert db_session.scalars(select(OutboundMessage).where(OutboundMessage.user_key == ANN.user_key)).all() == []


def test_a_customer_who_never_wrote_has_no_window(db_session: Session) -> None:
    assert not handoff.window_open(db_session, "15550009999", T0)


def test_release_drops_any_conversation_left_so_the_next_message_starts_afresh(db_session: Session) -> None:
    handoff.request(db_session, ANN, T0)
    db_session.add(
        ConversationState(
            user_key=ANN.user_key, conversation_flow="support", current_step="agent", expires_at=T0 + timedelta(days=1)
        )
    )
    db_session.flush()
    assert handoff.release(db_session, ANN.user_key, T0 + timedelta(minutes=1))
    assert db_session.scalar(select(ConversationState).where(ConversationState.user_key == ANN.user_key)) is None
    assert handoff.open_handoff(db_session, ANN.user_key) is None


def test_a_handoff_without_a_persons_message_for_the_timeout_is_released_by_itself(db_session: Session) -> None:
    wrote(db_session, BEA, "help", T0)
    handoff.request(db_session, ANN, T0)  # nobody ever answers
    handoff.request(db_session, BEA, T0)
    handoff.reply(db_session, BEA.user_key, "On it", T0 + timedelta(hours=20))  # a person answered later
    timeout = timedelta(hours=24)
    assert handoff.release_lapsed(db_session, T0 + timedelta(hours=23), timeout) == []
    assert handoff.release_lapsed(db_session, T0 + timedelta(hours=24), timeout) == [ANN.user_key]
    assert handoff.open_handoff(db_session, BEA.user_key) is not None
    assert handoff.release_lapsed(db_session, T0 + timedelta(hours=44), timeout) == [BEA.user_key]
    reasons = db_session.scalars(select(Handoff.release_reason).order_by(Handoff.id)).all()
    assert reasons == ["timeout", "timeout"]


def test_a_request_records_the_handoff_requested_event_only_when_asked(db_session: Session) -> None:
    handoff.request(db_session, ANN, T0, template="support", step="agent", text="Contact us")
    assert db_session.scalars(select(OutgoingEvent)).all() == []
    handoff.request(db_session, BEA, T0, template="support", step="agent", text="Contact us", events=True)
    (event,) = db_session.scalars(select(OutgoingEvent)).all()
    assert event.kind == event_outbox.HANDOFF_REQUESTED and event.status == "pending"
    body = json.loads(event.body)
    assert body["id"] == str(event.event_id) and body["type"] == "handoff.requested"
    assert body["data"] == {
        "user": BEA.user_key,
        "phone": None,
        "user_id": BEA.user_id,
        "template": "support",
        "step": "agent",
        "since": "2026-12-01T09:00:00Z",
        "last_message": "Contact us",
    }


@pytest.mark.parametrize(
    ("text", "expected"), [("agent", True), ("  AGENT ", True), ("Agent please", False), (None, False)]
)
def test_the_handoff_word_is_the_whole_message(text: str | None, expected: bool) -> None:
    assert handoff.is_handoff_word(text, ("agent", "human")) is expected


def test_the_same_calls_work_on_the_embedded_sqlite_database(tmp_path: Path) -> None:
    """``make run`` with no server uses SQLite: the partial index, locks and aggregates there."""
    url = f"sqlite:///{tmp_path / 'parley.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            wrote(session, ANN, "Contact us", T0)
            handoff.request(session, ANN, T0, template="support", step="agent", text="Contact us", events=True)
            assert handoff.keep_waiting(session, ANN.user_key, "anyone there?", T0 + timedelta(minutes=1))
            assert handoff.waiting_summary(session, T0 + timedelta(minutes=5)) == (1, 300.0)
            assert handoff.window_open(session, ANN.user_key, T0 + timedelta(hours=1))
            handoff.reply(session, ANN.user_key, "On it", T0 + timedelta(hours=1))
            assert [line.text for line in transcript(session, ANN.user_key)] == ["Contact us", "On it"]
            assert event_outbox.pending_count(session) == 1
        with Session(engine) as session, session.begin():
            session.add(Handoff(user_key=ANN.user_key, phone_number_id="PNID", requested_at=T0))
            with pytest.raises(IntegrityError):
                session.flush()
        with Session(engine) as session, session.begin():
            assert handoff.release_lapsed(session, T0 + timedelta(hours=25), timedelta(hours=24)) == [ANN.user_key]
            assert handoff.waiting_list(session) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("text", ["", "x" * (handoff.MAX_REPLY + 1), "nul \x00 inside", "lone \ud800 surrogate"])
def test_a_reply_postgres_could_not_store_is_refused_before_it_is_written(text: str) -> None:
    assert not handoff.valid_reply(text)
    assert handoff.valid_reply("Olá! 👋")


def test_handoffs_per_flow_and_retention(db_session: Session) -> None:
    handoff.request(db_session, ANN, T0, template="support", step="agent")
    handoff.request(db_session, BEA, T0 + timedelta(hours=1), template="support", step="agent")
    handoff.request(db_session, handoff.Customer("15550002222", "15550002222", None, "PNID"), T0 + timedelta(hours=2))
    assert handoff.requested_per_flow(db_session, T0) == {"support": 2, None: 1}
    assert handoff.requested_per_flow(db_session, T0 + timedelta(minutes=30)) == {"support": 1, None: 1}
    handoff.release(db_session, ANN.user_key, T0 + timedelta(hours=3))
    assert handoff.prune(db_session, T0 + timedelta(hours=3)) == 0  # released at the cutoff: kept
    assert handoff.prune(db_session, T0 + timedelta(days=40)) == 1  # only the released one
    assert [w.user for w in handoff.waiting_list(db_session)] == [BEA.user_key, "15550002222"]


def test_delivered_events_are_pruned_and_pending_ones_never(db_session: Session) -> None:
    first = event_outbox.record(db_session, event_outbox.FLOW_COMPLETED, {}, T0)
    event_outbox.record(db_session, event_outbox.MESSAGE_FAILED, {}, T0)
    (attempt, _) = event_outbox.take_due(db_session, T0)
    assert attempt.event_id == first
    event_outbox.delivered(db_session, attempt, T0)
    assert event_outbox.prune(db_session, T0 + timedelta(days=90)) == 1
    assert event_outbox.pending_count(db_session) == 1


def test_a_timeout_release_checks_again_under_the_lock_that_nobody_wrote_meanwhile(db_session: Session) -> None:
    wrote(db_session, ANN, "Contact us", T0 + timedelta(hours=22))
    handoff.request(db_session, ANN, T0)
    handoff.reply(db_session, ANN.user_key, "Still looking into it", T0 + timedelta(hours=23))
    # A Beat that read ANN as lapsed (quiet since before T0 + 1 h) before that reply committed.
    assert not handoff.release(db_session, ANN.user_key, T0 + timedelta(hours=25), "timeout", T0 + timedelta(hours=1))
    assert handoff.open_handoff(db_session, ANN.user_key) is not None
    assert handoff.release(db_session, ANN.user_key, T0 + timedelta(hours=25), "timeout", T0 + timedelta(hours=23))
