"""The shipped flows, conversation by conversation, through the real inbound path.

Each transcript (``transcripts/*.yaml``) is replayed through ``process_event`` on the real
Postgres with the real actions, so order numbers and submissions are the ones a customer
would get; after every turn the replies, the conversation row and submissions are checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.db import make_engine
from conversation.events import UserRef
from conversation.models import Contact, ConversationState, Order, OutboundMessage, Submission
from conversation.service import ConversationService
from conversation.state import EngineConfig
from conversation.texts.catalogue import shipped_catalogues
from conversation.turn import process_event
from templates.loader import load_directory
from tests.conversation.transcript import TRANSCRIPTS, Customer, describe, load, matches
from tests.support.database import migrate

ROOT = Path(__file__).resolve().parents[2]
# The shipped texts of every language, English the default, as a deployment without overrides has.
CONFIG = EngineConfig(catalogues=shipped_catalogues())


@pytest.fixture(params=["postgres", "sqlite"])
def any_session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """Postgres for production; SQLite because it is the newcomer's embedded default."""
    if request.param == "postgres":
        yield request.getfixturevalue("db_session")
        return
    url = f"sqlite:///{tmp_path / 'parley.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


@pytest.fixture
def flows(any_session: Session) -> Session:
    db_session = any_session
    result = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    assert result.errors == []
    ConversationService(db_session).upsert_templates(result.templates.values())
    db_session.commit()
    return db_session


@pytest.mark.parametrize("name", sorted(p.name for p in TRANSCRIPTS.glob("*.yaml")))
def test_transcript(flows: Session, name: str) -> None:
    session = flows
    script = load(name)
    customer = Customer(UserRef(user_id=None, phone="15550001111", profile_name="Ann"))
    for number, turn in enumerate(script["turns"], 1):
        where = f"{name} turn {number} ({turn})"
        event = customer.event(turn)
        result = process_event(session, event, CONFIG, mark_as_read=False, now=event.timestamp)
        session.commit()
        rows = session.scalars(
            select(OutboundMessage).where(OutboundMessage.id.in_(result.outbox_ids)).order_by(OutboundMessage.id)
        ).all()
        replies = [r.content for r in rows]
        customer.saw(replies)
        got = [describe(c) for c in replies]
        expected = turn.get("expect", [])
        assert len(got) == len(expected), f"{where}: got {got}"
        for want, actual in zip(expected, got, strict=True):
            assert matches(want, actual), f"{where}: expected {want!r}, got {actual!r}"
        assert all(r.to_phone == "15550001111" and r.phone_number_id == "PNID" for r in rows)
        if "state" in turn:
            conv = session.scalar(select(ConversationState).where(ConversationState.user_key == "15550001111"))
            actual_state = f"{conv.conversation_flow}/{conv.current_step}" if conv else "none"
            assert actual_state == turn["state"], where
        if "language" in turn:  # the conversation's, else (none) the one the contact keeps
            conv = session.scalar(select(ConversationState).where(ConversationState.user_key == "15550001111"))
            kept = session.scalar(select(Contact.language).where(Contact.user_key == "15550001111"))
            assert (conv.language if conv else kept) == turn["language"], where
        if "submission" in turn:
            sub = session.scalars(select(Submission).order_by(Submission.created_at.desc())).first()
            assert sub is not None and sub.template_name == turn["submission"]["template"], where
            for key, value in turn["submission"]["answers"].items():
                assert sub.answers.get(key) == value, f"{where}: answer {key}"
            if "language" in turn["submission"]:
                assert sub.language == turn["submission"]["language"], where


def test_coffee_order_number_is_a_stored_order(flows: Session) -> None:
    customer = Customer(UserRef(user_id="US.13491208655302741918", phone=None, profile_name="Bo"))
    turns = [{"send": "buy"}, {"tap": "coffee"}, {"send": "2"}, {"tap": "confirm"}]
    result = None
    for turn in turns:
        event = customer.event(turn)
        result = process_event(flows, event, CONFIG, mark_as_read=False, now=event.timestamp)
        flows.commit()
        customer.saw(
            [r.content for r in flows.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(result.outbox_ids)))]
        )
    submission = flows.scalars(select(Submission).where(Submission.user_key == "US.13491208655302741918")).one()
    order = flows.scalars(select(Order).where(Order.user_key == "US.13491208655302741918")).one()
    assert submission.answers["order_id"] == order.number
    assert order.items["product"] == "coffee" and order.items["quantity"] == 2
    assert submission.user_id == "US.13491208655302741918" and submission.phone_number is None
    reply = flows.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(result.outbox_ids))).one()
    assert order.number in reply.content["text"]["body"]
    assert reply.to_phone is None and reply.to_user_id == "US.13491208655302741918"
