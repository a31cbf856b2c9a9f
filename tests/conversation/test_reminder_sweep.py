"""Reminders of a flow step, from the turn that arms one to the sweep that sends it once,
on the real Postgres (the rolled-back ``db_session``; the sweep's own concurrency is
exercised by tests/e2e/test_reminders.py with two Beats)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import consent, reminder_sweep, reminders, template_status, turn, window
from conversation.account_changes import TemplateUpdate
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.models import ConversationState, OutboundMessage
from conversation.service import ConversationService
from conversation.state import EngineConfig
from conversation.template_cache import TEMPLATE_CACHE
from templates.loader import load_directory
from templates.message_templates import load_catalogue
from tests.conversation.test_turn import T0, ann
from tests.conversation.transcript import Customer

ROOT = Path(__file__).resolve().parents[2]
PHONE = "15550001111"
pytestmark = pytest.mark.postgres


@pytest.fixture
def session(db_session: Session) -> Session:
    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    ConversationService(db_session).upsert_templates(shipped.templates.values())
    return db_session


def at_confirmation(session: Session) -> Customer:
    """Ann orders 2 coffees and leaves the confirmation unanswered (it reminds after 30m)."""
    who = ann()
    for said in ({"send": "order"}, {"tap": "coffee"}, {"send": "2"}):
        event = who.event(said)
        turn.process_event(session, event, EngineConfig(), now=event.timestamp)
    return who  # the same builder goes on: its message ids never repeat


def remind_at(session: Session):
    return session.scalar(select(ConversationState.remind_at).where(ConversationState.user_key == PHONE))


def reminders_sent(session: Session) -> list[dict]:
    stmt = select(OutboundMessage.content).where(
        OutboundMessage.user_key == PHONE, OutboundMessage.origin == "reminder"
    )
    return list(session.scalars(stmt.order_by(OutboundMessage.id)))


def sweep(session: Session, at) -> list[str]:
    return reminder_sweep.send_due(session, TEMPLATE_CACHE.get(session), at)


def test_the_step_arms_its_reminder_and_the_sweep_sends_it_once(session: Session) -> None:
    at_confirmation(session)
    due = remind_at(session)
    assert due == T0 + timedelta(seconds=15) + timedelta(minutes=30)  # three messages, 5 s apart
    assert sweep(session, due - timedelta(seconds=1)) == [] and reminders_sent(session) == []
    assert sweep(session, due) == [PHONE]
    [sent] = reminders_sent(session)
    assert sent["text"]["body"] == (
        "Still there, Ann? Your 2 x Coffee is waiting: tap Confirm above to place the order."
    )
    assert remind_at(session) is None and sweep(session, due + timedelta(hours=1)) == []
    assert len(reminders_sent(session)) == 1


def test_once_the_window_has_closed_the_template_goes(session: Session) -> None:
    at_confirmation(session)
    later = T0 + timedelta(hours=25)
    session.execute(ConversationState.__table__.update().values(remind_at=later, expires_at=later + timedelta(hours=1)))
    assert sweep(session, later) == [PHONE]
    [sent] = reminders_sent(session)
    assert sent["template"]["name"] == "order_reminder"
    assert sent["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Ann"}]
    assert not window.is_open(window.last_inbound(session, PHONE, "PNID"), later)


def test_a_reminder_template_meta_paused_is_not_sent(session: Session, caplog) -> None:
    at_confirmation(session)
    later = T0 + timedelta(hours=25)  # the window has closed: only the template could go
    session.execute(ConversationState.__table__.update().values(remind_at=later, expires_at=later + timedelta(hours=1)))
    template_status.record(session, TemplateUpdate("order_reminder", "en_US", None, status="PAUSED"), later)
    assert sweep(session, later) == [] and reminders_sent(session) == []
    assert remind_at(session) is None  # not retried on every sweep while paused
    assert "order_reminder (en_US) is PAUSED by Meta" in caplog.text
    template_status.record(session, TemplateUpdate("order_reminder", "en_US", None, status="REINSTATED"), later)
    session.execute(ConversationState.__table__.update().values(remind_at=later))
    assert sweep(session, later) == [PHONE] and len(reminders_sent(session)) == 1


def test_an_answer_moves_the_reminder_and_an_opted_out_customer_gets_none(session: Session) -> None:
    who = at_confirmation(session)
    first = remind_at(session)
    event = who.event({"send": "maybe"})  # not an option: the step stays, and waits afresh
    turn.process_event(session, event, EngineConfig(), now=first - timedelta(minutes=1))
    assert remind_at(session) == first - timedelta(minutes=1) + timedelta(minutes=30)
    consent.apply_change(session, PHONE, "opt_out", first)
    assert sweep(session, first + timedelta(hours=1)) == [] and reminders_sent(session) == []
    assert remind_at(session) is None  # not kept for later: once means once


def test_due_at_is_none_for_a_step_without_a_reminder(session: Session) -> None:
    who = ann()
    event = who.event({"send": "order"})
    turn.process_event(session, event, EngineConfig(), now=event.timestamp)
    assert remind_at(session) is None
    assert reminders.due_at(TEMPLATE_CACHE.get(session), None, T0) is None


def test_a_portuguese_customer_is_reminded_in_portuguese(session: Session) -> None:
    who = ann()
    for said in ({"send": "pedido"}, {"tap": "coffee"}, {"send": "2"}):
        event = who.event(said)
        turn.process_event(session, event, EngineConfig(), now=event.timestamp)
    language = session.scalar(select(ConversationState.language).where(ConversationState.user_key == PHONE))
    assert language == "pt_BR"
    assert sweep(session, remind_at(session)) == [PHONE]
    [sent] = reminders_sent(session)
    assert sent["text"]["body"].startswith("Ainda está aí, Ann? Seu pedido de 2 x ")


def test_outside_the_window_a_portuguese_customer_gets_the_portuguese_template(session: Session) -> None:
    who = ann()
    for said in ({"send": "pedido"}, {"tap": "coffee"}, {"send": "2"}):
        event = who.event(said)
        turn.process_event(session, event, EngineConfig(), now=event.timestamp)
    later = T0 + timedelta(hours=25)
    session.execute(ConversationState.__table__.update().values(remind_at=later, expires_at=later + timedelta(hours=1)))
    catalogue = load_catalogue(ROOT / "templates").catalogue
    assert reminder_sweep.send_due(session, TEMPLATE_CACHE.get(session), later, catalogue=catalogue) == [PHONE]
    [sent] = reminders_sent(session)
    assert sent["template"]["name"] == "order_reminder"
    assert sent["template"]["language"] == {"code": "pt_BR"}  # the flow names it in en_US
