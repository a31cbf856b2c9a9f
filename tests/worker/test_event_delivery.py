"""Events out against a real HTTP receiver on loopback and a real, committing Postgres.

The receiver is what a helpdesk would run: it checks the signature, keeps each event id
once, and here it fails the first two attempts of every event, or is not listening at all.
The deliverer's clock is moved by hand so backoffs pass without waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from conversation import event_outbox
from conversation.db import make_engine
from conversation.handoff_models import OutgoingEvent
from tests.support.database import fresh_database
from tests.support.event_receiver import Receiver
from worker.event_delivery import EventPoster, PassReport, deliver_due

pytestmark = pytest.mark.postgres
SECRET = "test-events-secret"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def factory() -> Iterator[sessionmaker[Session]]:
    with fresh_database() as url:
        engine = make_engine(url)
        yield sessionmaker(engine, expire_on_commit=False)
        engine.dispose()


@pytest.fixture
def scope(factory: sessionmaker[Session]) -> Iterator[Callable[[], AbstractContextManager[Session]]]:
    @contextmanager
    def unit() -> Iterator[Session]:
        with factory() as session, session.begin():
            yield session

    with unit() as session:
        session.execute(OutgoingEvent.__table__.delete())
    yield unit


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def record_three(scope: Callable[[], AbstractContextManager[Session]]) -> list[str]:
    with scope() as session:
        return [
            str(event_outbox.record(session, event_outbox.HANDOFF_REQUESTED, {"user": "15550001111"}, T0)),
            str(event_outbox.record(session, event_outbox.FLOW_COMPLETED, {"answers": {"email": "a@b.example"}}, T0)),
            str(event_outbox.record(session, event_outbox.MESSAGE_FAILED, {"code": 131047}, T0)),
        ]


def test_a_receiver_that_fails_twice_then_accepts_gets_each_event_once_signed(scope) -> None:
    ids = record_three(scope)
    receiver = Receiver(SECRET, fail_first=2)
    poster, clock = EventPoster(receiver.url, SECRET), Clock()
    try:
        assert deliver_due(scope, poster, clock=clock) == PassReport(0, 3)
        clock.now = T0 + timedelta(seconds=4)  # the first backoff is 5 s
        assert deliver_due(scope, poster, clock=clock) == PassReport(0, 0)
        clock.now = T0 + timedelta(seconds=5)
        assert deliver_due(scope, poster, clock=clock) == PassReport(0, 3)
        clock.now = T0 + timedelta(seconds=15)  # then 10 s
        assert deliver_due(scope, poster, clock=clock) == PassReport(3, 0)
        clock.now = T0 + timedelta(days=1)
        assert deliver_due(scope, poster, clock=clock) == PassReport(0, 0)
    finally:
        poster.close()
        receiver.stop()
    assert receiver.bad_signatures == 0
    assert sorted(receiver.accepted) == sorted(ids)
    for event_id, tries in receiver.attempts.items():
        assert len(tries) == 3 and len(set(tries)) == 1, "every attempt sends the same signed body"
        assert receiver.accepted[event_id]["id"] == event_id
    kinds = {body["type"]: body for body in receiver.accepted.values()}
    assert kinds["flow.completed"]["data"] == {"answers": {"email": "a@b.example"}}
    assert kinds["handoff.requested"]["created_at"] == "2026-12-01T09:00:00Z"
    with scope() as session:
        rows = session.scalars(select(OutgoingEvent)).all()
        assert {(r.status, r.attempts, r.delivered_at) for r in rows} == {("delivered", 3, T0 + timedelta(seconds=15))}


def test_a_receiver_that_is_down_loses_nothing(scope) -> None:
    ids = record_three(scope)
    receiver = Receiver(SECRET)
    receiver.stop()  # its port now refuses connections
    poster, clock = EventPoster(receiver.url, SECRET), Clock()
    for _ in range(4):
        assert deliver_due(scope, poster, clock=clock) == PassReport(0, 3)
        clock.now += timedelta(hours=1)
    with scope() as session:
        rows = session.scalars(select(OutgoingEvent)).all()
        assert {(r.status, r.attempts, r.last_error) for r in rows} == {("pending", 4, "ConnectionError")}
    back = Receiver(SECRET)
    poster.url = back.url  # the endpoint is back (on a new port)
    try:
        assert deliver_due(scope, poster, clock=clock) == PassReport(3, 0)
    finally:
        poster.close()
        back.stop()
    assert sorted(back.accepted) == sorted(ids)


def test_an_attempt_whose_deliverer_died_is_retried_after_its_lease_with_the_same_id(scope) -> None:
    (first, *_) = record_three(scope)
    with scope() as session:
        taken = event_outbox.take_due(session, T0)  # and then the process dies
    assert str(taken[0].event_id) == first
    with scope() as session:
        assert event_outbox.take_due(session, T0 + event_outbox.LEASE - timedelta(seconds=1)) == []
    with scope() as session:
        again = event_outbox.take_due(session, T0 + event_outbox.LEASE)
    assert [(a.event_id, a.body, a.attempts) for a in again] == [(a.event_id, a.body, 2) for a in taken]


def test_competing_deliverers_take_disjoint_events(scope, factory: sessionmaker[Session]) -> None:
    record_three(scope)
    with factory() as one, one.begin(), factory() as two, two.begin():
        mine = event_outbox.take_due(one, T0, limit=2)
        theirs = event_outbox.take_due(two, T0, limit=2)  # skips the rows the first still locks
    assert len(mine) == 2 and len(theirs) == 1
    assert not {a.id for a in mine} & {a.id for a in theirs}


def test_an_event_recorded_in_a_rolled_back_unit_of_work_never_exists(factory: sessionmaker[Session], scope) -> None:
    with factory() as session, session.begin():
        event_outbox.record(session, event_outbox.FLOW_COMPLETED, {}, T0)
        session.rollback()
    with scope() as session:
        assert event_outbox.pending_count(session) == 0


def test_a_poster_refuses_to_run_unsigned_or_past_its_lease() -> None:
    with pytest.raises(ValueError):
        EventPoster("http://127.0.0.1:1/", "")
    with pytest.raises(ValueError):
        EventPoster("http://127.0.0.1:1/", SECRET, connect_timeout=30, read_timeout=30)


def test_the_verification_docs_operations_shows_a_helpdesk_accepts_our_signature() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    section = docs.split("## 7. Events out", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "OPERATIONS.md", "exec"), namespace)  # the documented code, as a helpdesk would paste it
    body = b'{"data":{"user":"15550001111"},"id":"e1","type":"handoff.requested"}'
    assert namespace["verify"](SECRET, body, event_outbox.sign(SECRET, body))["id"] == "e1"
    for header in (None, event_outbox.sign("another-secret", body), event_outbox.sign(SECRET, body + b" ")):
        with pytest.raises(PermissionError):
            namespace["verify"](SECRET, body, header)
