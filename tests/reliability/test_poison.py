"""Poison messages: an item that fails every time is dead-lettered after a bounded number of
tries, with its error, the customer gets an apology, and nothing blocks their next message.

``worker.inbound.process_raw`` on a real Postgres database of its own (it commits).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import worker.inbound as inbound_module
from conversation import outbox
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.db import make_engine, session_scope, using_engine
from conversation.models import InboundMessage, OutboundMessage, utcnow
from conversation.service import ConversationService
from settings import load_settings
from templates.loader import load_directory
from tests.reliability.audit import body_text
from tests.support.database import fresh_database
from tests.support.webhooks import contact, message, webhook
from worker.inbound import POISON_ATTEMPTS, process_raw

pytestmark = [pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = load_settings({"PARLEY_ENV": "test"})
APOLOGY = "Sorry, something went wrong on our side. Please try again in a moment."


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with fresh_database() as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def db(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """process_raw's session_scope() on this database, flows loaded; restored afterwards."""
    with using_engine(engine):
        with session_scope() as session:
            loaded = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
            ConversationService(session).upsert_templates(loaded.templates.values())
        monkeypatch.setattr(inbound_module.time, "sleep", lambda _s: None)  # no pauses between tries
        yield engine


def new_user() -> str:
    return "1555" + str(uuid.uuid4().int)[:8]


def replies(user: str) -> list[OutboundMessage]:
    with session_scope() as s:
        return list(
            s.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.user_key == user, OutboundMessage.kind == "message")
                .order_by(OutboundMessage.id)
            )
        )


def inbound(wamid: str) -> InboundMessage | None:
    with session_scope() as s:
        return s.scalar(select(InboundMessage).where(InboundMessage.wamid == wamid))


def poison_on(monkeypatch: pytest.MonkeyPatch, marker: str, exc: Exception | None = None) -> list[str]:
    """process_event fails (before commit) for messages whose text contains ``marker``; returns the tries."""
    real = inbound_module.process_event
    tries: list[str] = []

    def flaky(session: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(session, event, *args, **kwargs)
        if marker in (event.text or "") and not result.duplicate:  # fails after doing its work
            tries.append(event.wamid)
            raise exc or RuntimeError("a bug this message triggers every time")
        return result

    monkeypatch.setattr(inbound_module, "process_event", flaky)
    return tries


def test_a_poison_message_is_dead_lettered_after_bounded_tries_and_the_customer_hears_back(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries = poison_on(monkeypatch, "POISON")
    user = new_user()
    bad, good = message(user, "POISON pill"), message(user, "hi")
    handed: list[str] = []
    report = process_raw(json.dumps(webhook([bad, good], [contact(user)])), SETTINGS, handed.append)

    assert len(tries) == POISON_ATTEMPTS == 3
    assert (report.failed, report.handled) == (1, 1)
    dead = inbound(bad["id"])
    assert dead is not None and dead.outcome == "failed"
    assert dead.error is not None and "after 3 attempts: RuntimeError: a bug this message triggers" in dead.error
    assert dead.payload["text"]["body"] == "POISON pill"
    # The customer is told, and the sibling after it (same customer) is still answered.
    texts = [body_text(r.content) for r in replies(user)]
    assert texts == [APOLOGY, "Hi Test User! How can we help you today?"]
    assert handed.count(user) == 2

    # Meta redelivers the same POST: nothing is tried again, nobody apologizes twice.
    again = process_raw(json.dumps(webhook([bad, good], [contact(user)])), SETTINGS, handed.append)
    assert (again.duplicates, again.failed) == (2, 0) and len(tries) == 3
    assert len(replies(user)) == 2

    # The customer's next message goes through normally.
    process_raw(json.dumps(webhook([message(user, "order")], [contact(user)])), SETTINGS, handed.append)
    assert body_text(replies(user)[-1].content) == "What would you like to order?"


def test_a_message_that_fails_once_is_retried_not_dead_lettered(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    real = inbound_module.process_event
    calls: list[int] = []

    def once(session: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a passing glitch")
        return real(session, event, *args, **kwargs)

    monkeypatch.setattr(inbound_module, "process_event", once)
    user = new_user()
    hi = message(user, "hi")
    report = process_raw(json.dumps(webhook([hi], [contact(user)])), SETTINGS, lambda _u: None)
    assert (report.handled, report.failed, len(calls)) == (1, 0, 2)
    assert inbound(hi["id"]).outcome != "failed"  # type: ignore[union-attr]
    assert [body_text(r.content) for r in replies(user)] == ["Hi Test User! How can we help you today?"]


def test_a_database_outage_is_not_poison(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    outage = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    tries = poison_on(monkeypatch, "hi", outage)
    user = new_user()
    hi = message(user, "hi")
    with pytest.raises(OperationalError):  # the task retries the whole payload later
        process_raw(json.dumps(webhook([hi], [contact(user)])), SETTINGS, lambda _u: None)
    assert len(tries) == 1 and inbound(hi["id"]) is None and replies(user) == []


def test_the_soft_time_limit_retries_the_payload_instead_of_dead_lettering(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries = poison_on(monkeypatch, "hi", SoftTimeLimitExceeded())
    user = new_user()
    hi = message(user, "hi")
    with pytest.raises(SoftTimeLimitExceeded):  # the task retries the payload with a fresh limit
        process_raw(json.dumps(webhook([hi], [contact(user)])), SETTINGS, lambda _u: None)
    assert len(tries) == 1 and inbound(hi["id"]) is None and replies(user) == []


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param('"\\ud800"', id="lone-surrogate"),
        pytest.param("NaN", id="nan"),
        pytest.param('"nul\\u0000byte"', id="nul"),
    ],
)
def test_unstorable_json_in_a_message_never_loses_it(db: Engine, junk: str) -> None:
    """Valid-looking items carrying JSON Postgres refuses: handled, or dead-lettered with an apology."""
    user = new_user()
    hi, after = message(user, "hi"), message(user, "order")
    raw = json.dumps(webhook([hi, after], [contact(user)]))
    raw = raw.replace('"type": "text"', f'"extra": {junk}, "type": "text"', 1)
    report = process_raw(raw, SETTINGS, lambda _u: None)
    assert report.handled + report.failed == 2
    first = inbound(hi["id"])
    assert first is not None, "the message vanished: neither handled nor dead-lettered"
    texts = [body_text(r.content) for r in replies(user)]
    if first.outcome == "failed":
        assert first.error and texts[0] == APOLOGY
    else:
        assert texts[0] == "Hi Test User! How can we help you today?"
    assert texts[-1] == "What would you like to order?"


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(st.dictionaries(st.sampled_from(["id", "from", "type", "text", "timestamp", "x"]), junk), max_size=4)
)
def test_junk_items_never_escape_the_worker_and_a_valid_sibling_is_answered(
    db: Engine, items: list[dict[str, Any]]
) -> None:
    user = new_user()
    valid = message(user, "hi")
    payload = webhook([*items, valid], [contact(user)])
    raw = json.dumps(payload)  # NaN and Infinity included, as Python's json (and the receiver) accept them
    report = process_raw(raw, SETTINGS, lambda _u: None)
    assert report.handled >= 1
    assert [body_text(r.content) for r in replies(user)][-1] == "Hi Test User! How can we help you today?"


def test_an_apology_to_a_first_time_customer_can_be_sent(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender leases the customer's contacts row; a poison first message must still create it."""
    poison_on(monkeypatch, "POISON")
    user = new_user()
    process_raw(json.dumps(webhook([message(user, "POISON first")], [contact(user)])), SETTINGS, lambda _: None)
    assert [body_text(r.content) for r in replies(user)] == [APOLOGY]
    with Session(db) as session, session.begin():
        assert outbox.acquire_lease(session, user, utcnow())
