"""A customer who changes number while the sender is sending to them, on real Postgres and
the stub Graph API: the sender goes on as the new identity and lets go of its lease there.

Without that, the lease the move carried to the new identity would sit unreleased until it
ran out (a minute), and the customer's next replies would wait for it.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from conversation.db import session_scope
from conversation.events import IdentityChange
from conversation.identity import move_customer
from conversation.models import Contact, OutboundMessage, utcnow
from tests.support.graph_stub import GraphStub
from tests.worker.test_sender import customer, rows, sent_texts
from worker.graph_api import GraphClient
from worker.sender import drain

pytestmark = pytest.mark.postgres


def test_a_move_mid_send_hands_the_lease_to_the_new_identity_and_it_is_released(
    engine: Engine, stub: GraphStub, client: GraphClient
) -> None:
    stub.configure(latency=0.3)
    old = customer(engine, ["first"])
    new = "1666" + old[4:]
    result: list = []
    sender = threading.Thread(target=lambda: result.append(drain(old, client, 5)))
    sender.start()
    stub.wait_for_count(1)  # the sender holds the lease and waits for Graph
    now = utcnow()
    with session_scope() as s:  # the notice's turn: the move, then a reply queued for the new number
        move_customer(s, IdentityChange(old, None, new, None), now)
        s.add(
            OutboundMessage(
                user_key=new, phone_number_id="PNID", to_phone=new, kind="message",
                content={"type": "text", "text": {"body": "second"}}, status="pending",
                attempts=0, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    assert drain(new, client, 5).busy  # the lease moved with the customer: still one sender
    sender.join()
    assert result[0].sent == 2
    assert sent_texts(stub, old) == ["first"] and sent_texts(stub, new) == ["second"]
    assert [r.status for r in rows(new)] == ["accepted", "accepted"] and rows(old) == []
    with session_scope() as s:
        lease = s.scalar(select(Contact.sender_lease_until).where(Contact.user_key == new))
    assert lease is None  # let go, not left to run out
