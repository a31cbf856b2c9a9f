"""The simulator's notifications (``webhook/console/simulator_notify.py``) and template
replies, on real Postgres (its own migrated database, as test_simulator.py). ``HAND_OFF``
records who would be handed to a sender; the sending is tests/e2e/test_notifications.py's.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from conversation import db, window
from conversation.consent import apply_change
from conversation.models import Contact, OutboundMessage, utcnow
from conversation.template_messages import template_content
from tests.webhook.console.test_simulator import (  # noqa: F401
    add,
    app_for,
    engine,
    make_settings,
    sandbox_row,
    store,
    user,
)

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("store")]


@pytest.fixture
def handed() -> list[str]:
    return []


@pytest.fixture
def sim(handed: list[str]) -> FlaskClient:
    app = app_for(make_settings())
    app.config["HAND_OFF"] = handed.append
    return app.test_client()


def test_a_template_notification_is_queued_for_the_customer_chatted_as(sim: FlaskClient, handed: list[str]) -> None:
    who = user()
    call = {"name": "order_ready", "language": "en_US", "parameters": ["ORD-000007"]}
    answer = sim.post("/simulator/api/notify", json={"user": who, "template": call})
    assert answer.status_code == 202, answer.json
    assert handed == [who]
    with db.session_scope() as session:
        row = session.get(OutboundMessage, answer.json["id"])
        assert row is not None and row.origin == "notification" and row.phone_number_id == "100000000000001"
        assert row.content == template_content("order_ready", "en_US", ["ORD-000007"])


def test_a_text_is_refused_outside_the_window_and_an_opted_out_customer_gets_nothing(
    sim: FlaskClient, handed: list[str]
) -> None:
    who = user()
    closed = sim.post("/simulator/api/notify", json={"user": who, "text": "hello"})
    assert closed.status_code == 409 and "window is closed" in closed.json["error"]
    with db.session_scope() as session:
        session.add(Contact(user_key=who, phone_number=who, pair_limit_hits=0))
        session.flush()
        window.record_inbound(session, who, "100000000000001", utcnow() - timedelta(minutes=5))
    info = sim.get(f"/simulator/api/notifications?user={who}").json
    assert info["opted_out_at"] is None and info["windows"][0]["open"] is True
    assert {"name": "order_ready", "language": "en_US", "parameters": 1} in info["templates"]
    assert sim.post("/simulator/api/notify", json={"user": who, "text": "hello"}).status_code == 202
    with db.session_scope() as session:
        apply_change(session, who, "opt_out", utcnow())
    assert sim.get(f"/simulator/api/notifications?user={who}").json["opted_out_at"] is not None
    call = {"name": "order_ready", "language": "en_US", "parameters": ["ORD-1"]}
    assert sim.post("/simulator/api/notify", json={"user": who, "template": call}).status_code == 409
    assert handed == [who]


def test_template_replies_come_with_what_whatsapp_shows(sim: FlaskClient) -> None:
    who = user()
    body = {"messaging_product": "whatsapp", "to": f"+{who}", **template_content("order_ready", "en_US", ["ORD-9"])}
    add(sandbox_row(f"+{who}", body))
    [reply] = sim.get(f"/simulator/api/replies?user={who}").json["messages"]
    assert reply["content"]["type"] == "template"
    assert reply["rendered"]["body"].startswith("Good news: your order ORD-9 is ready.")
    [item] = [i for i in sim.get(f"/simulator/api/history?user={who}").json["items"] if i["dir"] == "out"]
    assert item["rendered"]["header"] == "Your order is ready"
