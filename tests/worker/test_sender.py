"""The outbox sender against real Postgres and the stub Graph API over loopback.

These tests commit for real (the sender opens its own sessions), so they use the
``engine`` fixture's database of their own rather than the rolled-back ``db_session``.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from conversation import outbox, window
from conversation.db import session_scope
from conversation.models import Contact, OutboundMessage, utcnow
from tests.support.graph_stub import GraphStub
from worker.sender import drain

pytestmark = pytest.mark.postgres


def customer(
    engine: Engine, texts: list[str], kinds: list[str] | None = None, wrote: timedelta | None = timedelta(0)
) -> str:
    """A customer with pending outbox rows, oldest first, who wrote ``wrote`` ago (None:
    never, so their 24-hour window is closed); returns the user key."""
    phone = "1555" + str(uuid.uuid4().int)[:7]
    now = utcnow()
    with session_scope() as s:
        s.add(Contact(user_key=phone, phone_number=phone, pair_limit_hits=0))
        if wrote is not None:
            window.record_inbound(s, phone, "PNID", now - wrote)
        for i, text in enumerate(texts):
            kind = (kinds or ["message"] * len(texts))[i]
            content = (
                {"message_id": f"wamid.IN{i}"} if kind == "mark_read" else {"type": "text", "text": {"body": text}}
            )
            s.add(
                OutboundMessage(
                    user_key=phone, phone_number_id="PNID", to_phone=phone, kind=kind, content=content,
                    status="pending", attempts=0, created_at=now, updated_at=now,
                )
            )  # fmt: skip
    return phone


def rows(user: str) -> list[OutboundMessage]:
    with session_scope() as s:
        return list(
            s.scalars(select(OutboundMessage).where(OutboundMessage.user_key == user).order_by(OutboundMessage.id))
        )


def sent_texts(stub: GraphStub, user: str) -> list[str]:
    return [r.body["text"]["body"] for r in stub.messages() if r.recipient == f"+{user}" and r.status == 200]


def test_replies_go_out_in_order_and_each_stores_its_wamid(engine, stub, client) -> None:
    user = customer(engine, ["read", "one", "two", "three"], ["mark_read", "message", "message", "message"])
    result = drain(user, client, max_attempts=5)
    assert (result.sent, result.failed, result.retry_in) == (4, 0, None)
    assert sent_texts(stub, user) == ["one", "two", "three"]
    stored = rows(user)
    assert all(r.status == "accepted" for r in stored)
    assert [r.wamid for r in stored[1:]] == [r.wamid for r in stub.messages() if r.recipient == f"+{user}"]


def test_a_read_receipt_and_its_reply_cost_the_sender_two_transactions(engine, stub, client) -> None:
    user = customer(engine, ["read", "reply"], ["mark_read", "message"])
    commits: list[int] = []
    listener = lambda _conn: commits.append(1)  # noqa: E731
    event.listen(engine, "commit", listener)
    try:
        result = drain(user, client, max_attempts=5)
    finally:
        event.remove(engine, "commit", listener)
    assert (result.sent, result.failed) == (2, 0)
    # One to take the lease and both rows, one to store the answers and let go.
    assert len(commits) == 2
    with session_scope() as s:
        assert s.get(Contact, user).sender_lease_until is None


def test_a_reply_written_while_the_sender_holds_the_lease_is_sent_by_that_sender(engine, stub, client) -> None:
    """The inbound side locks the contacts row while it adds rows; the sender's last
    transaction locks it too before looking for more, so nothing is left for the sweep."""
    stub.configure(latency=0.3)
    user = customer(engine, ["first"])
    first_drain: list = []
    sender = threading.Thread(target=lambda: first_drain.append(drain(user, client, 5)))
    sender.start()
    stub.wait_for_count(1)  # the sender holds the lease and waits for Graph
    now = utcnow()
    with session_scope() as s:
        s.scalar(select(Contact).where(Contact.user_key == user).with_for_update())
        s.add(
            OutboundMessage(
                user_key=user, phone_number_id="PNID", to_phone=user, kind="message",
                content={"type": "text", "text": {"body": "second"}}, status="pending",
                attempts=0, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    assert drain(user, client, 5).busy  # its hand-off finds the lease taken
    sender.join()
    assert first_drain[0].sent == 2
    assert sent_texts(stub, user) == ["first", "second"]
    assert [r.status for r in rows(user)] == ["accepted", "accepted"]


def test_two_senders_for_one_customer_send_each_reply_once_in_order(engine, stub, client) -> None:
    stub.configure(latency=0.05)
    user = customer(engine, [f"m{i}" for i in range(8)])
    results = []
    threads = [threading.Thread(target=lambda: results.append(drain(user, client, 5))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sent_texts(stub, user) == [f"m{i}" for i in range(8)]
    assert sum(r.sent for r in results) == 8
    assert any(r.busy for r in results)


def test_a_transient_error_holds_later_replies_back_until_the_retry(engine, stub, client) -> None:
    user = customer(engine, ["first", "second"])
    stub.push(status=500, recipient=f"+{user}")
    result = drain(user, client, 5)
    assert result.retry_in is not None and result.sent == 0
    first, second = rows(user)
    assert (first.status, first.last_error_code, second.status) == ("pending", None, "pending")
    assert first.next_attempt_at > utcnow() - timedelta(seconds=1)
    assert sent_texts(stub, user) == []  # "second" did not overtake "first"
    time.sleep(result.retry_in)
    assert drain(user, client, 5).sent == 2
    assert sent_texts(stub, user) == ["first", "second"]
    assert rows(user)[0].attempts == 2


def test_a_permanent_error_fails_that_reply_only(engine, stub, client) -> None:
    user = customer(engine, ["late", "later"])
    stub.push_error(code=131047, http_status=400, recipient=f"+{user}")
    result = drain(user, client, 5)
    assert (result.sent, result.failed) == (1, 1)
    first, second = rows(user)
    assert (first.status, first.last_error_code, first.attempts) == ("failed", 131047, 1)
    assert second.status == "accepted"


def test_pair_rate_limit_backs_off_this_customer(engine, stub, client) -> None:
    user = customer(engine, ["x"])
    stub.push_error(code=131056, http_status=400, recipient=f"+{user}")
    result = drain(user, client, 5)
    assert result.retry_in == pytest.approx(1.0, abs=0.2)  # 4**0 s on the first hit
    with session_scope() as s:
        contact = s.get(Contact, user)
        assert contact.pair_limit_hits == 1 and contact.send_not_before > utcnow()
    time.sleep(result.retry_in + 0.1)
    assert drain(user, client, 5).sent == 1
    with session_scope() as s:
        assert s.get(Contact, user).pair_limit_hits == 0


def test_attempts_are_bounded(engine, stub, client) -> None:
    user = customer(engine, ["doomed"])
    for _ in range(2):
        stub.push(status=503, recipient=f"+{user}")
    first = drain(user, client, max_attempts=2)
    time.sleep(first.retry_in)
    second = drain(user, client, max_attempts=2)
    assert second.failed == 1 and rows(user)[0].status == "failed"


def test_a_crashed_senders_lease_runs_out_and_its_row_is_sent(engine, stub, client) -> None:
    user = customer(engine, ["after crash"])
    past = utcnow() - timedelta(seconds=1)
    with session_scope() as s:
        s.get(Contact, user).sender_lease_until = past
        row = s.scalars(select(OutboundMessage).where(OutboundMessage.user_key == user)).one()
        row.status = "sending"  # died between marking and the answer
    assert drain(user, client, 5).sent == 1
    assert sent_texts(stub, user) == ["after crash"]


def test_a_live_lease_keeps_other_senders_out(engine, stub, client) -> None:
    user = customer(engine, ["wait"])
    with session_scope() as s:
        assert outbox.acquire_lease(s, user, utcnow())
    assert drain(user, client, 5).busy
    assert sent_texts(stub, user) == []


def test_sweep_finds_rows_left_behind_but_not_those_waiting_for_a_retry(engine) -> None:
    forgotten = customer(engine, ["forgotten"])
    waiting = customer(engine, ["waiting"])
    now = utcnow()
    with session_scope() as s:
        for row in s.scalars(select(OutboundMessage).where(OutboundMessage.user_key.in_([forgotten, waiting]))):
            row.updated_at = now - timedelta(minutes=5)
            if row.user_key == waiting:
                row.next_attempt_at = now + timedelta(minutes=5)
    with session_scope() as s:
        found = outbox.users_to_sweep(s, now, timedelta(seconds=60))
    assert forgotten in found and waiting not in found
