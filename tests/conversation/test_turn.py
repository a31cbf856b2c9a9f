"""The one writer of a customer's turn (conversation/turn.py) on the real Postgres.

Each test runs in the ``db_session`` transaction, rolled back after: the writer's own
rows are read back with plain queries, never through the writer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conversation import consent, turn, window
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.content import text_message
from conversation.engine_settings import engine_config
from conversation.events import InboundEvent, UserRef
from conversation.models import Contact, ConversationEvent, ConversationState, InboundMessage, OutboundMessage
from conversation.service import ConversationService
from conversation.state import EngineConfig
from settings import load_settings
from templates.loader import load_directory
from tests.conversation.transcript import Customer

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.postgres


@pytest.fixture
def session(db_session: Session) -> Session:
    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    ConversationService(db_session).upsert_templates(shipped.templates.values())
    return db_session


def ann(phone: str = "15550001111") -> Customer:
    return Customer(UserRef(user_id=None, phone=phone, profile_name="Ann"), start=T0)


def outbox(session: Session, user_key: str) -> list[tuple[str, dict]]:
    rows = session.execute(
        select(OutboundMessage.kind, OutboundMessage.content)
        .where(OutboundMessage.user_key == user_key)
        .order_by(OutboundMessage.id)
    )
    return [(kind, content) for kind, content in rows]


def drop_offs(session: Session, user_key: str) -> list[tuple[str, str, str]]:
    rows = session.execute(
        select(ConversationEvent.template_name, ConversationEvent.step, ConversationEvent.event)
        .where(ConversationEvent.user_key == user_key)
        .order_by(ConversationEvent.id)
    )
    return [tuple(row) for row in rows]


def inbound(session: Session, wamid: str) -> InboundMessage:
    return session.scalars(select(InboundMessage).where(InboundMessage.wamid == wamid)).one()


# --- the hot path -------------------------------------------------------------------


def test_a_turn_writes_state_events_outbox_and_outcome_together(session: Session) -> None:
    who = ann()
    event = who.event({"send": "order"})
    result = turn.process_event(session, event, EngineConfig(), now=event.timestamp)

    assert not result.duplicate and result.user_key == "15550001111" and result.outcome == "started"
    state = session.scalars(select(ConversationState).where(ConversationState.user_key == result.user_key)).one()
    assert (state.conversation_flow, state.current_step) == ("new_order", "initial")
    assert state.expires_at == event.timestamp + timedelta(hours=24)  # the flow's own expiry_hours
    assert drop_offs(session, result.user_key) == [("new_order", "initial", "entered")]
    kinds = [kind for kind, _ in outbox(session, result.user_key)]
    assert kinds == ["mark_read", "message"]  # the read receipt first: the sender goes by id
    ids = session.scalars(select(OutboundMessage.id).where(OutboundMessage.user_key == result.user_key))
    assert sorted(ids) == result.outbox_ids
    row = inbound(session, event.wamid)
    assert (row.outcome, row.sent_at, row.phone_number_id) == ("started", event.timestamp, "PNID")
    contact = session.get(Contact, result.user_key)
    assert contact is not None and contact.profile_name == "Ann" and contact.last_seen_at == event.timestamp


def test_a_redelivered_message_writes_nothing_more(session: Session) -> None:
    event = ann().event({"send": "hi"})
    first = turn.process_event(session, event, EngineConfig(), now=event.timestamp)
    again = turn.process_event(session, event, EngineConfig(), now=event.timestamp + timedelta(minutes=1))
    assert again.duplicate and again.outbox_ids == [] and again.outcome == "duplicate"
    assert len(outbox(session, first.user_key)) == len(first.outbox_ids)
    assert drop_offs(session, first.user_key) == [("main_menu", "initial", "entered")]


def test_the_engine_and_the_writer_agree_on_expiry(session: Session) -> None:
    """The hot path (the engine's expiry) and a started conversation (turn.expiry) give one answer."""
    config = EngineConfig(default_expiry=timedelta(hours=3))
    event = ann().event({"send": "hi"})
    turn.process_event(session, event, config, now=event.timestamp)
    by_engine = session.scalar(select(ConversationState.expires_at).where(ConversationState.user_key == "15550001111"))
    main_menu = ConversationService(session).template_set().get("main_menu")
    assert main_menu is not None and main_menu.expiry_hours is None
    assert by_engine == config.expiry(main_menu, event.timestamp) == event.timestamp + timedelta(hours=3)
    started = turn.start(session, UserRef(None, "15550002222"), main_menu, config, T0)
    assert started.expires_at == T0 + timedelta(hours=3)


def test_engine_config_comes_from_the_settings() -> None:
    settings = load_settings(
        {"PARLEY_DEFAULT_EXPIRY_HOURS": "5", "PARLEY_FALLBACK_PERIOD_SECONDS": "90", "PARLEY_ENV": "development"}
    )
    config = engine_config(settings)
    assert config.default_expiry == timedelta(hours=5) and config.fallback_period == timedelta(seconds=90)
    assert config.cancel_words == settings.cancel_words and config.fallback_text == settings.fallback_text


# --- the dead letter ----------------------------------------------------------------


def test_a_dead_letter_is_recorded_once_and_apologizes_once(session: Session) -> None:
    event = ann().event({"send": "order"})
    apology = text_message("Sorry, something went wrong.")
    assert turn.dead_letter(session, event, "after 3 attempts: ValueError: boom", apology, T0) is True
    assert turn.dead_letter(session, event, "after 3 attempts: ValueError: again", apology, T0) is False

    row = inbound(session, event.wamid)
    assert (row.outcome, row.error) == ("failed", "after 3 attempts: ValueError: again")
    assert outbox(session, "15550001111") == [("message", apology)]
    assert session.get(Contact, "15550001111") is not None  # the sender's lease lives on this row
    # A redelivery of the dead-lettered message is a duplicate: the engine never runs it.
    assert turn.process_event(session, event, EngineConfig(), now=T0).duplicate


def test_a_dead_letter_error_is_cut_to_what_the_column_keeps(session: Session) -> None:
    event = ann().event({"send": "x"})
    turn.dead_letter(session, event, "E" * 5000, text_message("Sorry"), T0)
    assert len(inbound(session, event.wamid).error) == 2000


# --- the terminal chat --------------------------------------------------------------


def test_answer_here_returns_the_replies_and_leaves_nothing_to_send(session: Session) -> None:
    who = ann()
    replies = turn.answer_here(session, who.event({"send": "order"}), EngineConfig())
    assert [r["type"] for r in replies] == ["interactive"]  # no read receipt on a terminal
    assert outbox(session, "15550001111") == []
    assert turn.answer_here(session, who.event({"send": "order"}), EngineConfig())  # the turn moved on
    assert session.scalar(select(func.count()).select_from(InboundMessage)) == 2


# --- the service's writes -----------------------------------------------------------


def test_start_move_and_end_log_where_the_customer_went(session: Session) -> None:
    templates = ConversationService(session).template_set()
    user = UserRef(None, "15550003333")
    new_order, support = templates.get("new_order"), templates.get("support")
    assert new_order is not None and support is not None
    turn.start(session, user, new_order, EngineConfig(), T0)
    moved = turn.move(session, user.key, T0 + timedelta(minutes=1), step="quantity", context={"product": "tea"})
    assert moved is not None and moved.context == {"product": "tea"} and moved.last_interaction > T0
    turn.start(session, user, support, EngineConfig(), T0 + timedelta(minutes=2))  # replaces it
    assert turn.end(session, user.key, "cancelled", T0 + timedelta(minutes=3)) is True
    assert turn.end(session, user.key, "cancelled", T0 + timedelta(minutes=4)) is False
    assert turn.move(session, user.key, T0 + timedelta(minutes=5), step="x") is None
    assert drop_offs(session, user.key) == [
        ("new_order", "initial", "entered"),
        ("new_order", "quantity", "restarted"),
        ("support", "initial", "entered"),
        ("support", "initial", "cancelled"),
    ]


def test_ending_an_expired_conversation_logs_it_as_expired(session: Session) -> None:
    main_menu = ConversationService(session).template_set().get("main_menu")
    assert main_menu is not None
    user = UserRef(None, "15550004444")
    turn.start(session, user, main_menu, EngineConfig(), T0)
    assert turn.live_conversation(session, user.key, T0 + timedelta(days=2)) is None
    assert turn.end(session, user.key, "cancelled", T0 + timedelta(days=2)) is True
    assert drop_offs(session, user.key)[-1] == ("main_menu", "initial", "expired")


def test_expire_removes_only_due_conversations_and_logs_each(session: Session) -> None:
    main_menu = ConversationService(session).template_set().get("main_menu")
    assert main_menu is not None
    for i in range(5):
        turn.start(session, UserRef(None, f"1555001{i:04d}"), main_menu, EngineConfig(), T0)
    live = UserRef(None, "15550019999")
    turn.start(session, live, main_menu, EngineConfig(), T0 + timedelta(days=2))
    now = T0 + timedelta(days=2)
    assert turn.expire(session, now, batch_size=2) == 5
    assert session.scalars(select(ConversationState.user_key)).all() == [live.key]
    expired = session.scalar(
        select(func.count()).select_from(ConversationEvent).where(ConversationEvent.event == "expired")
    )
    assert expired == 5


def test_an_inbound_event_with_only_a_bsuid_is_keyed_by_it(session: Session) -> None:
    user = UserRef(user_id="US.13491208655302741918", phone=None, profile_name="Bo")
    event = InboundEvent("wamid.BSUID1", user, "PNID", T0, "text", "text", text="hi")
    result = turn.process_event(session, event, EngineConfig(), now=T0)
    assert result.user_key == "US.13491208655302741918"
    state = session.scalars(select(ConversationState).where(ConversationState.user_key == result.user_key)).one()
    assert state.user_id == "US.13491208655302741918" and state.phone_number is None
    assert {row.to_user_id for row in session.scalars(select(OutboundMessage))} == {"US.13491208655302741918"}


# --- notifications: the window and opt-out ---------------------------------------------


def test_every_message_opens_the_window_from_when_it_was_sent(session: Session) -> None:
    who = ann()
    first = who.event({"send": "hi"})
    turn.process_event(session, first, EngineConfig(), now=first.timestamp + timedelta(minutes=3))
    assert window.last_inbound(session, "15550001111", "PNID") == first.timestamp
    late = who.event({"send": "menu"})
    turn.process_event(session, late, EngineConfig(), now=late.timestamp + timedelta(hours=5))
    assert window.last_inbound(session, "15550001111", "PNID") == late.timestamp


def test_stop_marks_the_contact_and_subscribe_clears_it(session: Session) -> None:
    who = ann()
    for said in ({"send": "order"}, {"send": "stop"}):
        event = who.event(said)
        result = turn.process_event(session, event, EngineConfig(), now=event.timestamp)
    assert result.outcome == "opted_out"
    assert consent.opted_out_since(session, "15550001111") == event.timestamp
    assert turn.live_conversation(session, "15550001111", event.timestamp) is None
    assert drop_offs(session, "15550001111")[-1] == ("new_order", "initial", "cancelled")
    event = who.event({"send": "subscribe"})
    assert turn.process_event(session, event, EngineConfig(), now=event.timestamp).outcome == "opted_in"
    assert consent.opted_out_since(session, "15550001111") is None
