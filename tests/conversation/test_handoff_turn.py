"""The paused state through the real turn writer on Postgres, with the shipped flows.

``process_event`` opens the handoff when the customer taps Contact, keeps what they write
without a word from the bot, records the events of a handoff and of a completed flow only
when events are on, and after release the customer is back with the bot.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import event_outbox, handoff, handoff_turn, outbox
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.events import StatusEvent, UserRef
from conversation.handoff_models import Handoff, OutgoingEvent
from conversation.models import ConversationState, InboundMessage, OutboundMessage, Submission
from conversation.service import ConversationService
from conversation.state import EngineConfig, StepResult
from conversation.turn import InboundResult, process_event
from templates.loader import load_directory
from tests.conversation.transcript import Customer, describe

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CONFIG = EngineConfig(handoff_words=("agent",))
PHONE = "15550002222"


@pytest.fixture
def flows(db_session: Session) -> Session:
    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    assert shipped.errors == []
    ConversationService(db_session).upsert_templates(shipped.templates.values())
    db_session.commit()
    return db_session


def turn(session: Session, who: Customer, step: dict[str, str], events: bool = True) -> tuple[InboundResult, list[str]]:
    event = who.event(step)
    result = process_event(session, event, CONFIG, mark_as_read=False, now=event.timestamp, events=events)
    session.commit()
    rows = session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(result.outbox_ids))).all()
    who.saw([r.content for r in rows])
    return result, [describe(r.content) for r in rows]


def kinds(session: Session) -> list[str]:
    return list(session.scalars(select(OutgoingEvent.kind).order_by(OutgoingEvent.id)))


def test_contact_hands_off_then_the_bot_keeps_quiet_until_release(flows: Session) -> None:
    ann = Customer(UserRef(user_id=None, phone=PHONE, profile_name="Ann"), start=T0)
    turn(flows, ann, {"send": "hi"})
    turn(flows, ann, {"tap": "support"})
    result, replies = turn(flows, ann, {"tap": "contact"})
    assert result.outcome == "handed_off" and result.events == 1
    assert replies == ["Okay, a person from our team will answer you here. Write your message whenever you like."]
    assert flows.scalar(select(ConversationState).where(ConversationState.user_key == PHONE)) is None
    open_row = handoff.open_handoff(flows, PHONE)
    assert open_row is not None and (open_row.template_name, open_row.step) == ("support", "contact_person")

    for said in ("anyone there?", "hi", "cancel", "support"):
        result, replies = turn(flows, ann, {"send": said})
        assert (result.outcome, replies, result.events) == ("waiting", [], 0), said
    waiting = handoff.waiting_list(flows)
    assert [(w.user, w.last_message, w.waiting) for w in waiting] == [(PHONE, "support", 5)]
    outcomes = flows.scalars(select(InboundMessage.outcome).where(InboundMessage.user_key == PHONE)).all()
    assert sorted(outcomes).count("waiting") == 4

    event = json.loads(flows.scalars(select(OutgoingEvent.body)).one())
    assert event["type"] == "handoff.requested"
    assert (event["data"]["user"], event["data"]["template"], event["data"]["step"]) == (
        PHONE,
        "support",
        "contact_person",
    )

    assert handoff.release(flows, PHONE, ann.clock)
    flows.commit()
    result, replies = turn(flows, ann, {"send": "hi"})
    assert result.outcome == "started" and replies[0].startswith("Hi Ann!")


def test_the_handoff_word_works_mid_flow_and_without_events_nothing_is_recorded(flows: Session) -> None:
    bo = Customer(UserRef(user_id=None, phone=PHONE, profile_name="Bo"), start=T0)
    turn(flows, bo, {"send": "order"}, events=False)
    result, replies = turn(flows, bo, {"send": "agent"}, events=False)
    assert result.outcome == "handed_off" and replies == [CONFIG.texts.handed_off]
    open_row = handoff.open_handoff(flows, PHONE)
    assert open_row is not None and open_row.template_name is None and open_row.last_message == "agent"
    assert kinds(flows) == []


def test_a_completed_flow_records_its_answers_for_the_events_receiver(flows: Session) -> None:
    cy = Customer(UserRef(user_id=None, phone=PHONE, profile_name="Cy"), start=T0)
    for step in ({"send": "support"}, {"tap": "faq"}, {"tap": "done"}):
        turn(flows, cy, step)
    submission = flows.scalars(select(Submission).where(Submission.user_key == PHONE)).one()
    body = json.loads(flows.scalars(select(OutgoingEvent.body)).one())
    assert body["type"] == "flow.completed"
    assert body["data"] == {
        "user": PHONE,
        "template": "support",
        "submission_id": str(submission.id),
        "answers": submission.answers,
    }


def test_a_message_that_fails_for_good_is_told_once_and_a_failed_read_receipt_is_not(flows: Session) -> None:
    dee = Customer(UserRef(user_id=None, phone=PHONE, profile_name="Dee"), start=T0)
    event = dee.event({"send": "hi"})
    result = process_event(flows, event, CONFIG, mark_as_read=True, now=T0, events=False)
    receipt, reply = result.outbox_ids
    outbox.settle(flows, PHONE, [outbox.Failed(receipt, 131000, "bad"), outbox.Failed(reply, 131026, "gone")], T0, True)
    assert kinds(flows) == ["message.failed"]
    data = json.loads(flows.scalars(select(OutgoingEvent.body)).one())["data"]
    assert data == {"user": PHONE, "message_id": reply, "code": 131026, "error": "gone"}

    later = process_event(flows, dee.event({"send": "hi"}), CONFIG, mark_as_read=False, now=T0, events=False)
    row = flows.get(OutboundMessage, later.outbox_ids[0])
    assert row is not None
    row.wamid = "wamid.SENT"
    flows.flush()
    failed = StatusEvent("wamid.SENT", "failed", T0 + timedelta(seconds=5), PHONE, 131049, "not delivered")
    assert outbox.apply_status(flows, failed, events=True) == "applied"
    assert kinds(flows) == ["message.failed", "message.failed"]
    assert event_outbox.pending_count(flows) == 2


def test_one_open_handoff_row_however_often_the_customer_asks(flows: Session) -> None:
    eve = Customer(UserRef(user_id=None, phone=PHONE, profile_name="Eve"), start=T0)
    turn(flows, eve, {"send": "agent"})
    turn(flows, eve, {"send": "agent"})
    assert len(flows.scalars(select(Handoff).where(Handoff.user_key == PHONE)).all()) == 1
    assert kinds(flows) == ["handoff.requested"]


def test_an_opt_out_while_handed_off_also_releases_the_customer(flows: Session) -> None:
    fay = Customer(UserRef(user_id=None, phone=PHONE, profile_name="Fay"), start=T0)
    turn(flows, fay, {"send": "agent"})
    # What the opt-out word's route gives back (it answers before the paused state does).
    opted_out = StepResult(None, [], [], handoff_turn.OPTED_OUT)  # type: ignore[arg-type]
    handoff_turn.carry_out(flows, fay.event({"send": "stop"}), opted_out, T0 + timedelta(minutes=1), events=True)
    row = flows.scalars(select(Handoff).where(Handoff.user_key == PHONE)).one()
    assert (row.released_at, row.release_reason) == (T0 + timedelta(minutes=1), "opt_out")
