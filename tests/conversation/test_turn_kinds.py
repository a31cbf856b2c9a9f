"""The turn writer and the kinds table together, on the real Postgres: what an event, an
edit and an identity notice write (and do not), from payloads in Meta's shapes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import turn
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.events import InboundEvent, UserRef
from conversation.models import Contact, ConversationState, CustomerWindow, InboundMessage, OutboundMessage
from conversation.payload import parse_payload
from conversation.service import ConversationService
from conversation.state import EngineConfig
from templates.loader import load_directory
from tests.conversation.transcript import Customer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "payloads"
OLD_BSUID, NEW_BSUID, NEW_PHONE = "US.13491208655302741918", "US.77012345678901234567", "16505550000"
pytestmark = pytest.mark.postgres


@pytest.fixture
def session(db_session: Session) -> Session:
    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    ConversationService(db_session).upsert_templates(shipped.templates.values())
    return db_session


def fixture_event(name: str) -> InboundEvent:
    [event] = parse_payload((FIXTURES / f"{name}.json").read_bytes()).messages
    return event


def kinds_queued(session: Session, user_key: str) -> list[str]:
    return list(
        session.scalars(
            select(OutboundMessage.kind).where(OutboundMessage.user_key == user_key).order_by(OutboundMessage.id)
        )
    )


def windows(session: Session, user_key: str) -> list[str]:
    return list(session.scalars(select(CustomerWindow.phone_number_id).where(CustomerWindow.user_key == user_key)))


@pytest.mark.parametrize(
    "name", ["revoke", "call_permission_reply", "system_customer_identity_changed", "unknown_future_kind"]
)
def test_an_event_is_recorded_with_no_read_receipt_no_reply_and_no_window(session: Session, name: str) -> None:
    event = fixture_event(name)
    result = turn.process_event(session, event, EngineConfig(), now=event.timestamp)
    assert result.outcome in ("recorded", "unknown_kind") and result.outbox_ids == []
    assert kinds_queued(session, event.user.key) == []
    assert windows(session, event.user.key) == []  # Meta opens the window on a message, not a notice
    row = session.scalars(select(InboundMessage).where(InboundMessage.wamid == event.wamid)).one()
    assert row.outcome == result.outcome


def test_a_deletion_and_an_edit_name_the_message_they_are_about(session: Session) -> None:
    for name in ("revoke", "edit"):
        event = fixture_event(name)
        turn.process_event(session, event, EngineConfig(), now=event.timestamp)
        row = session.scalars(select(InboundMessage).where(InboundMessage.wamid == event.wamid)).one()
        assert row.refers_to == event.target_wamid and row.refers_to is not None


def test_a_customer_message_opens_the_window_and_gets_a_read_receipt(session: Session) -> None:
    event = Customer(UserRef(user_id=None, phone="15550001111")).event({"send": "hi"})
    turn.process_event(session, event, EngineConfig(), now=event.timestamp)
    assert kinds_queued(session, "15550001111")[0] == "mark_read"
    assert windows(session, "15550001111") == ["PNID"]


def test_an_edit_that_re_answers_a_step_gets_a_read_receipt(session: Session) -> None:
    who = Customer(UserRef(user_id=OLD_BSUID, phone="16505551234"), start=datetime.now(UTC))
    for said in ({"send": "order"}, {"tap": "coffee"}):
        turn.process_event(session, who.event(said), EngineConfig())
    quantity = replace(who.event({"send": "2"}), wamid="wamid.quantity")
    turn.process_event(session, quantity, EngineConfig())
    # The customer edits the quantity they typed: the edit answers that step again.
    edit = replace(fixture_event("edit"), target_wamid="wamid.quantity", timestamp=datetime.now(UTC))
    before = len(kinds_queued(session, OLD_BSUID))
    result = turn.process_event(session, edit, EngineConfig())
    assert result.outcome != "recorded"
    assert kinds_queued(session, OLD_BSUID)[before:] == ["mark_read", "message"]
    state = session.scalars(select(ConversationState).where(ConversationState.user_key == OLD_BSUID)).one()
    assert state.context["quantity"] == 3  # the edited text, validated as a number


def test_a_number_change_moves_the_customer_before_the_engine_runs(session: Session) -> None:
    who = Customer(UserRef(user_id=OLD_BSUID, phone="16505551234"), start=datetime.now(UTC) - timedelta(minutes=5))
    turn.process_event(session, who.event({"send": "order"}), EngineConfig())
    notice = fixture_event("system_user_changed_number")
    result = turn.process_event(session, notice, EngineConfig())
    assert result.outcome == "recorded" and result.outbox_ids == []
    assert session.get(Contact, OLD_BSUID) is None
    contact = session.get(Contact, NEW_BSUID)
    assert contact is not None and (contact.phone_number, contact.user_id) == (NEW_PHONE, NEW_BSUID)
    state = session.scalars(select(ConversationState).where(ConversationState.user_key == NEW_BSUID)).one()
    assert (state.conversation_flow, state.current_step, state.phone_number) == ("new_order", "initial", NEW_PHONE)
    keys = set(session.scalars(select(InboundMessage.user_key)))
    assert keys == {NEW_BSUID}  # the notice itself too: the customer's history is in one place
    assert windows(session, NEW_BSUID) == ["PNID"] and windows(session, OLD_BSUID) == []
