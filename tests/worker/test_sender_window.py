"""The sender never attempts a free-form message outside the customer's 24-hour window.

Real Postgres and the stub Graph API over loopback, as in test_sender.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from conversation.db import session_scope
from conversation.models import OutboundMessage, utcnow
from conversation.template_messages import template_content
from tests.worker.test_sender import customer, rows, sent_texts
from worker.sender import drain

pytestmark = pytest.mark.postgres


def test_a_text_after_the_window_closed_fails_at_once_with_131047_and_graph_never_sees_it(engine, stub, client):
    user = customer(engine, ["read", "too late"], ["mark_read", "message"], wrote=timedelta(hours=24, minutes=1))
    result = drain(user, client, max_attempts=5)
    assert (result.sent, result.failed, result.retry_in) == (1, 1, None)  # the read receipt still goes
    receipt, text = rows(user)
    assert receipt.status == "accepted"
    assert (text.status, text.last_error_code, text.attempts) == ("failed", 131047, 1)
    assert text.last_error.startswith("the 24-hour customer service window closed at ")
    assert sent_texts(stub, user) == []


def test_a_customer_who_never_wrote_gets_templates_only(engine, stub, client):
    user = customer(engine, ["hello"], wrote=None)
    now = utcnow()
    with session_scope() as s:
        content = template_content("order_ready", "en_US", ["ORD-000002"])
        s.add(OutboundMessage(user_key=user, phone_number_id="PNID", to_phone=user, kind="message", content=content,
                              status="pending", attempts=0, created_at=now, updated_at=now))  # fmt: skip
    result = drain(user, client, 5)
    assert (result.sent, result.failed) == (1, 1)
    text, template = rows(user)
    assert text.status == "failed" and "never wrote to this number" in text.last_error
    assert template.status == "accepted"
    [sent] = [m.body for m in stub.messages() if m.recipient == f"+{user}"]
    assert sent["type"] == "template" and sent["template"]["name"] == "order_ready"


def test_inside_the_window_a_text_goes(engine, stub, client):
    user = customer(engine, ["in time"], wrote=timedelta(hours=23, minutes=59))
    assert drain(user, client, 5).sent == 1
    assert sent_texts(stub, user) == ["in time"]
