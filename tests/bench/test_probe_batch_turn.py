"""The set-based batch turn of the queue-cost probe (``bench/probe_batch_turn.py``) on the real Postgres.

The probe's figures for its designs b4-b6 stand only if a batch does what ``process_event``
does one message at a time. So every shipped transcript is replayed here with all
customers in lockstep, one batch per turn holding each customer's next message, and each
customer must get exactly the replies, conversation state and submissions its transcript
expects (what ``tests/conversation/test_transcripts.py`` checks for ``process_event``),
without the batch falling back to ``process_event``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.probe_batch_turn import process_batch
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.events import InboundEvent, UserRef
from conversation.models import Contact, ConversationState, InboundMessage, OutboundMessage, Submission
from conversation.service import ConversationService
from conversation.state import EngineConfig
from conversation.texts.catalogue import shipped_catalogues
from templates.loader import load_directory
from tests.conversation.transcript import TRANSCRIPTS, Customer, describe, load, matches

ROOT = Path(__file__).resolve().parents[2]
CONFIG = EngineConfig(catalogues=shipped_catalogues())
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.postgres


@pytest.fixture
def flows(db_session: Session) -> Session:
    result = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    assert result.errors == []
    ConversationService(db_session).upsert_templates(result.templates.values())
    return db_session


@pytest.fixture
def batch_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """The sketch's "batch failed" warning is captured, whatever logging the suite set up."""
    caplog.set_level("WARNING", logger="bench.probe_batch_turn")


def replies(session: Session, ids: list[int]) -> list[str]:
    """The messages among these outbox rows (not the read receipts), described as transcripts write them."""
    rows = session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.id.in_(ids), OutboundMessage.kind == "message")
        .order_by(OutboundMessage.id)
    )
    return [describe(r.content) for r in rows]


def state_of(session: Session, user_key: str) -> str:
    conv = session.scalar(select(ConversationState).where(ConversationState.user_key == user_key))
    return f"{conv.conversation_flow}/{conv.current_step}" if conv else "none"


def assert_no_fallback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if "batch failed" in r.getMessage()], "the batch went one by one"


def test_every_transcript_in_lockstep_batches_gets_its_replies(
    flows: Session, caplog: pytest.LogCaptureFixture, batch_warnings: None
) -> None:
    scripts = {p.name: load(p.name) for p in sorted(TRANSCRIPTS.glob("*.yaml"))}
    assert len(scripts) >= 5
    customers = {
        name: Customer(UserRef(user_id=None, phone=f"1555000{i:04d}", profile_name="Ann"), start=T0)
        for i, name in enumerate(scripts)
    }
    longest = max(len(s["turns"]) for s in scripts.values())
    for n in range(longest):
        batch: list[tuple[str, dict, InboundEvent]] = []
        for name, script in scripts.items():
            if n < len(script["turns"]):
                turn = script["turns"][n]
                batch.append((name, turn, customers[name].event(turn)))
        now = max(e.timestamp for _, _, e in batch)
        results = process_batch(flows, [e for _, _, e in batch], CONFIG, mark_as_read=False, now=now)
        flows.flush()
        assert len(results) == len(batch) and not any(r.duplicate for r in results)
        for (name, turn, event), result in zip(batch, results, strict=True):
            where = f"{name} turn {n + 1} ({turn})"
            assert result.user_key == event.user.key, where
            got = replies(flows, result.outbox_ids)
            customers[name].saw(
                [
                    r.content
                    for r in flows.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(result.outbox_ids)))
                ]
            )
            expected = turn.get("expect", [])
            assert len(got) == len(expected), f"{where}: got {got}"
            for want, actual in zip(expected, got, strict=True):
                assert matches(want, actual), f"{where}: expected {want!r}, got {actual!r}"
            if "state" in turn:
                assert state_of(flows, event.user.key) == turn["state"], where
            if "language" in turn:
                conv = flows.scalar(select(ConversationState).where(ConversationState.user_key == event.user.key))
                kept = flows.scalar(select(Contact.language).where(Contact.user_key == event.user.key))
                assert (conv.language if conv else kept) == turn["language"], where
            if "submission" in turn:
                sub = flows.scalars(
                    select(Submission)
                    .where(Submission.user_key == event.user.key)
                    .order_by(Submission.created_at.desc())
                ).first()
                assert sub is not None and sub.template_name == turn["submission"]["template"], where
                for key, value in turn["submission"]["answers"].items():
                    assert sub.answers.get(key) == value, f"{where}: answer {key}"
    assert_no_fallback(caplog)


def test_one_customers_messages_in_one_batch_are_answered_in_order(
    flows: Session, caplog: pytest.LogCaptureFixture, batch_warnings: None
) -> None:
    script = load("account.yaml")["turns"][:4]  # account, tap orders, profile, tap profile
    ann = Customer(UserRef(user_id=None, phone="15550009999", profile_name="Ann"), start=T0)
    events = [ann.event(turn) for turn in script]
    results = process_batch(flows, events, CONFIG, mark_as_read=True, now=events[-1].timestamp)

    assert [r.user_key for r in results] == ["15550009999"] * 4
    for turn, result in zip(script, results, strict=True):
        kinds = [
            k
            for k in flows.scalars(
                select(OutboundMessage.kind)
                .where(OutboundMessage.id.in_(result.outbox_ids))
                .order_by(OutboundMessage.id)
            )
        ]
        assert kinds[0] == "mark_read"  # each message's receipt before its replies
        got = replies(flows, result.outbox_ids)
        assert [matches(w, g) for w, g in zip(turn["expect"], got, strict=True)] == [True] * len(turn["expect"])
    every = [r for result in results for r in result.outbox_ids]
    assert every == sorted(every)  # ids ascend in message order: the sender sends by id
    assert state_of(flows, "15550009999") == "account/name"
    assert_no_fallback(caplog)


def test_a_redelivered_message_is_a_duplicate_in_the_same_batch_and_in_a_later_one(
    flows: Session, caplog: pytest.LogCaptureFixture, batch_warnings: None
) -> None:
    bo = Customer(UserRef(user_id=None, phone="15550008888", profile_name="Bo"), start=T0)
    hi = bo.event({"send": "hi"})

    first = process_batch(flows, [hi, hi], CONFIG, now=hi.timestamp)
    again = process_batch(flows, [hi], CONFIG, now=hi.timestamp)

    assert [r.duplicate for r in first] == [False]  # one result per wamid
    assert first[0].outbox_ids
    assert [r.duplicate for r in again] == [True] and again[0].outbox_ids == []
    assert flows.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.wamid == hi.wamid)) == 1
    written = flows.scalar(
        select(func.count()).select_from(OutboundMessage).where(OutboundMessage.user_key == "15550008888")
    )
    assert written == len(first[0].outbox_ids)
    assert_no_fallback(caplog)
