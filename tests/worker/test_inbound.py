"""The worker's inbound path hands a customer's new replies to a sender only when no
sender is already serving that customer (one that is will send them before it lets go)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from conversation.db import session_scope
from conversation.models import Contact, OutboundMessage, utcnow
from settings import get_settings
from tests.e2e.stack import contact, message, webhook
from tests.support.graph_stub import start_stub
from worker.graph import GraphClient
from worker.inbound import process_raw
from worker.sender import DrainResult, drain

pytestmark = pytest.mark.postgres


def say(phone: str, handed: list[str], **said: Any) -> None:
    raw = json.dumps(webhook([message(phone, **said)], [contact(phone)]))
    assert process_raw(raw, get_settings(), handed.append).handled == 1


def statuses(user: str) -> list[tuple[str, str]]:
    with session_scope() as s:
        found = s.execute(
            select(OutboundMessage.kind, OutboundMessage.status)
            .where(OutboundMessage.user_key == user)
            .order_by(OutboundMessage.id)
        )
        return [(kind, status) for kind, status in found]


def test_a_message_for_a_customer_being_served_is_sent_by_that_sender_without_a_hand_off(
    flows_engine: Engine,
) -> None:
    phone = "15550005001"
    handed: list[str] = []
    with start_stub(latency=0.3) as stub:
        client = GraphClient(stub.url, "test-token", 1.0, 2.0)
        say(phone, handed, text="hi")
        assert handed == [phone]
        drained: list[DrainResult] = []
        sender = threading.Thread(target=lambda: drained.append(drain(phone, client, 3)))
        sender.start()
        stub.wait_for_count(1)  # the sender holds the lease, waiting for Graph
        say(phone, handed, tap=("new_order", "New Order"))
        assert handed == [phone]  # no second deliver task
        sender.join(timeout=10)
        # The holder took the new rows after renewing its lease: both messages' receipts and replies.
        assert drained[0].sent == 4
        assert [r.kind for r in stub.requests()] == ["mark_read", "message", "mark_read", "message"]
    assert statuses(phone) == [("mark_read", "accepted"), ("message", "accepted")] * 2
    with session_scope() as s:
        assert s.get(Contact, phone).sender_lease_until is None


@pytest.mark.parametrize(
    ("lease", "why"),
    [(None, "no sender"), (timedelta(seconds=-1), "a crashed sender's lease ran out")],
)
def test_a_message_is_handed_off_when_no_live_sender_holds_the_lease(
    flows_engine: Engine, lease: timedelta | None, why: str
) -> None:
    phone = "15550005002" if lease is None else "15550005003"
    handed: list[str] = []
    say(phone, handed, text="hi")
    with session_scope() as s:
        until = None if lease is None else utcnow() + lease
        s.execute(update(Contact).where(Contact.user_key == phone).values(sender_lease_until=until))
    say(phone, handed, tap=("new_order", "New Order"))
    assert handed == [phone, phone], why
