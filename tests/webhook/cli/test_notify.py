"""``flask --app webhook notify`` and ``orders ready`` on the real Postgres.

The commands' sessions are the test's ``db_session``; ``HAND_OFF`` records who would be
handed to a sender (the sending itself is exercised by tests/e2e/test_notifications.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import window
from conversation.consent import apply_change
from conversation.models import Contact, Order, OutboundMessage, utcnow
from settings import load_settings
from tests.webhook.console.test_admin import scope_of
from webhook import create_app
from webhook.cli import orders
from worker import notify

pytestmark = pytest.mark.postgres
PHONE = "15550002222"


@pytest.fixture
def handed() -> list[str]:
    return []


@pytest.fixture
def runner(db_session: Session, handed: list[str], monkeypatch: pytest.MonkeyPatch) -> FlaskCliRunner:
    monkeypatch.setattr(notify, "session_scope", scope_of(db_session))
    monkeypatch.setattr(orders, "session_scope", scope_of(db_session))
    settings = load_settings({"PARLEY_ENV": "test", "WHATSAPP_PHONE_NUMBER_ID": "100"})
    app = create_app({"SETTINGS": settings, "ENQUEUE": lambda body: None, "HAND_OFF": handed.append})
    return app.test_cli_runner()


def queued(session: Session) -> list[OutboundMessage]:
    return list(session.scalars(select(OutboundMessage).where(OutboundMessage.user_key == PHONE)))


def test_a_template_is_queued_and_handed_to_a_sender(
    runner: FlaskCliRunner, db_session: Session, handed: list[str]
) -> None:
    args = ["notify", "+1 555 000 2222", "--template", "order_ready", "--param", "ORD-000009", "--idempotency-key", "k"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "queued (pending); idempotency key k" in result.output and handed == [PHONE]
    [row] = queued(db_session)
    assert row.origin == "notification" and row.phone_number_id == "100"
    assert row.content["template"]["components"][0]["parameters"] == [{"type": "text", "text": "ORD-000009"}]
    again = runner.invoke(args=args)
    assert again.exit_code == 0 and "was queued before" in again.output
    assert len(queued(db_session)) == 1 and handed == [PHONE]


def test_refusals_say_why_and_queue_nothing(runner: FlaskCliRunner, db_session: Session, handed: list[str]) -> None:
    closed = runner.invoke(args=["notify", PHONE, "--text", "hello"])
    assert (
        closed.exit_code == 1 and "refused (409): text: the 24-hour customer service window is closed" in closed.output
    )
    wrong = runner.invoke(args=["notify", PHONE, "--template", "order_ready"])
    assert wrong.exit_code == 1 and "refused (422): template.parameters" in wrong.output
    usage = runner.invoke(args=["notify", PHONE, "--text", "a", "--template", "order_ready"])
    assert usage.exit_code == 2 and "give either --template NAME or --text TEXT" in usage.output
    assert queued(db_session) == [] and handed == []


def test_a_text_goes_inside_the_window_but_not_to_an_opted_out_customer(
    runner: FlaskCliRunner, db_session: Session, handed: list[str]
) -> None:
    db_session.add(Contact(user_key=PHONE, phone_number=PHONE, pair_limit_hits=0))
    window.record_inbound(db_session, PHONE, "100", utcnow() - timedelta(hours=1))
    db_session.commit()
    assert runner.invoke(args=["notify", PHONE, "--text", "your table is ready"]).exit_code == 0
    apply_change(db_session, PHONE, "opt_out", utcnow())
    db_session.commit()
    refused = runner.invoke(args=["notify", PHONE, "--text", "and another thing"])
    assert refused.exit_code == 1 and "refused (409): to: the customer opted out" in refused.output
    assert len(queued(db_session)) == 1 and handed == [PHONE]


def test_orders_ready_notifies_whoever_ordered_once(
    runner: FlaskCliRunner, db_session: Session, handed: list[str]
) -> None:
    order = Order(user_key=PHONE, items={"product": "coffee"})
    db_session.add(order)
    db_session.commit()
    first = runner.invoke(args=["orders", "ready", order.number])
    assert first.exit_code == 0 and f"idempotency key order_ready:{order.number}" in first.output
    second = runner.invoke(args=["orders", "ready", order.number])
    assert second.exit_code == 0 and "was queued before" in second.output
    [row] = queued(db_session)
    assert row.content["template"]["name"] == "order_ready" and handed == [PHONE]
    missing = runner.invoke(args=["orders", "ready", "ORD-999999999"])
    assert missing.exit_code == 1 and "no order ORD-999999999" in missing.output
