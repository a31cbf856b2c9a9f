"""Every inbound kind as WhatsApp means it, on the running system: payloads in Meta's shapes
(tests/fixtures/payloads), signed and posted to gunicorn, run by two Celery workers over
Redis and Postgres, replies to the stub Graph API.

Each test makes the fixture its own customer (fresh phone, BSUID and wamids), so tests do
not see each other's rows or replies.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.engine import Engine

from conversation.models import (
    Contact,
    ConversationState,
    InboundMessage,
    Order,
    OutboundMessage,
    Submission,
)
from conversation.template_status_models import MessageTemplateStatus
from settings import DEV_ADMIN_TOKEN
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack, wait_until
from tests.support.webhooks import PHONE_NUMBER_ID, contact, message, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 30
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
# The sample identities the fixtures are written with, replaced per test.
SAMPLE_PHONE, SAMPLE_NEW_PHONE = "16505551234", "16505550000"
SAMPLE_BSUID = "US.13491208655302741918"
SAMPLE_NEW_BSUIDS = ("US.77012345678901234567", "US.88012345678901234567")
SAMPLE_NUMBER_ID = "106540352242922"
AUTH = {"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"}
WAMID = re.compile(r"wamid\.[A-Za-z0-9=_-]+")


class Person:
    """A fresh customer: a phone and a BSUID, and the ones they change to."""

    def __init__(self) -> None:
        digits = str(uuid.uuid4().int)
        self.phone, self.new_phone = "1555" + digits[:7], "1555" + digits[7:14]
        self.bsuid, self.new_bsuid = "US." + digits[:20], "US." + digits[14:34].ljust(20, "7")

    def fixture(self, name: str) -> dict[str, Any]:
        """Fixture ``name`` as this person sent it now, with wamids of its own."""
        text = (FIXTURES / f"{name}.json").read_text(encoding="utf-8")
        fresh: dict[str, str] = {}
        text = WAMID.sub(lambda m: fresh.setdefault(m.group(0), f"wamid.E2E{uuid.uuid4().hex}"), text)
        for sample, mine in (
            (SAMPLE_NEW_PHONE, self.new_phone),
            (SAMPLE_PHONE, self.phone),
            (SAMPLE_BSUID, self.bsuid),
            *((b, self.new_bsuid) for b in SAMPLE_NEW_BSUIDS),
            (SAMPLE_NUMBER_ID, PHONE_NUMBER_ID),
            ('"1750090800"', f'"{int(time.time())}"'),
        ):
            text = text.replace(sample, mine)
        return json.loads(text)

    def says(
        self, stack: Stack, text: str | None = None, tap: tuple[str, str] | None = None, new: bool = False
    ) -> None:
        phone, bsuid = (self.new_phone, self.new_bsuid) if new else (self.phone, self.bsuid)
        item = message(phone, text=text, tap=tap)
        assert stack.post(webhook([item], [contact(phone, bsuid)])).status_code == 200


def first_wamid(payload: dict[str, Any]) -> str:
    return payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]


def handled(db: Engine, wamid: str) -> Any:
    """The inbound row once its turn committed (its outcome is no longer 'processing')."""

    def done() -> Any:
        with db.connect() as conn:
            row = conn.execute(select(InboundMessage).where(InboundMessage.wamid == wamid)).first()
        return row if row is not None and row.outcome != "processing" else None

    return wait_until(done, TIMEOUT, f"inbound {wamid} handled")


def sent_to(graph: GraphStub, *who: str) -> list[Any]:
    want = {w for p in who for w in (p, "+" + p)}
    return [r for r in graph.requests() if r.recipient in want]


def text_of(request: Any) -> str:
    body = request.body
    return body["text"]["body"] if body["type"] == "text" else body["interactive"]["body"]["text"]


def wait_texts(graph: GraphStub, n: int, *who: str) -> list[str]:
    graph.wait_for(lambda _: len([r for r in sent_to(graph, *who) if r.kind == "message"]) >= n, TIMEOUT)
    return [text_of(r) for r in sent_to(graph, *who) if r.kind == "message"]


@pytest.mark.parametrize(
    "name", ["revoke", "call_permission_reply", "system_customer_identity_changed", "unknown_future_kind"]
)
def test_an_event_gets_no_reply_and_no_read_receipt(stack: Stack, graph: GraphStub, db: Engine, name: str) -> None:
    ann = Person()
    payload = ann.fixture(name)
    assert stack.post(payload).status_code == 200
    row = handled(db, first_wamid(payload))
    assert row.outcome == ("unknown_kind" if name == "unknown_future_kind" else "recorded")
    with db.connect() as conn:
        queued = conn.execute(select(OutboundMessage.id).where(OutboundMessage.inbound_wamid == row.wamid)).all()
    # Nothing queued in the turn's own transaction, so nothing can ever be sent for it.
    assert queued == []
    assert sent_to(graph, ann.phone, ann.bsuid) == []


def test_a_deletion_is_kept_against_the_message_it_deletes(stack: Stack, graph: GraphStub, db: Engine) -> None:
    ann = Person()
    ann.says(stack, "hi")
    wait_texts(graph, 1, ann.phone, ann.bsuid)
    with db.connect() as conn:
        said = conn.execute(select(InboundMessage.wamid).where(InboundMessage.user_key == ann.bsuid)).scalar_one()
    payload = ann.fixture("revoke")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["revoke"]["original_message_id"] = said
    assert stack.post(payload).status_code == 200
    assert handled(db, first_wamid(payload)).refers_to == said
    assert len([r for r in sent_to(graph, ann.phone, ann.bsuid) if r.kind == "message"]) == 1


@pytest.mark.parametrize("notice", ["system_user_changed_number", "system_user_changed_user_id"])
def test_the_customer_moves_with_their_conversation(stack: Stack, graph: GraphStub, db: Engine, notice: str) -> None:
    ann = Person()
    ann.says(stack, "order")
    assert wait_texts(graph, 1, ann.phone, ann.bsuid) == ["What would you like to order?"]
    payload = ann.fixture(notice)
    assert stack.post(payload).status_code == 200
    assert handled(db, first_wamid(payload)).outcome == "recorded"
    # From the new identity, the customer carries on where they were: no second customer.
    new_phone = ann.new_phone if notice == "system_user_changed_number" else ann.phone
    item = message(new_phone, tap=("coffee", "Coffee"))
    assert stack.post(webhook([item], [contact(new_phone, ann.new_bsuid)])).status_code == 200
    texts = wait_texts(graph, 2, ann.phone, ann.bsuid, new_phone, ann.new_bsuid)
    assert texts[1] == "How many Coffee? (Enter a number)"
    with db.connect() as conn:
        keys = set(
            conn.execute(select(Contact.user_key).where(Contact.user_key.in_([ann.bsuid, ann.new_bsuid]))).scalars()
        )
        state = conn.execute(select(ConversationState).where(ConversationState.user_key == ann.new_bsuid)).one()
        owners = set(
            conn.execute(
                select(InboundMessage.user_key).where(InboundMessage.user_key.in_([ann.bsuid, ann.new_bsuid]))
            ).scalars()
        )
    assert keys == {ann.new_bsuid} and owners == {ann.new_bsuid}
    assert (state.conversation_flow, state.current_step, state.phone_number) == ("new_order", "quantity", new_phone)


def test_a_catalog_order_becomes_a_confirmed_order(stack: Stack, graph: GraphStub, db: Engine) -> None:
    ann = Person()
    assert stack.post(ann.fixture("order")).status_code == 200
    [confirm] = wait_texts(graph, 1, ann.phone, ann.bsuid)
    assert confirm == "You're ordering 2 x coffee, 1 x sandwich. Total: 12.90 EUR. Shall I place the order?"
    ann.says(stack, tap=("confirm", "Confirm"))
    placed = wait_texts(graph, 2, ann.phone, ann.bsuid)[1]
    number = re.fullmatch(
        r"Order placed! Your order number is (ORD-\d+)\. We'll let you know when it's ready\.", placed
    )
    assert number is not None
    with db.connect() as conn:
        [order] = conn.execute(select(Order).where(Order.user_key == ann.bsuid)).all()
    assert [(i["product_id"], i["quantity"]) for i in order.items["cart_items"]] == [("coffee", 2), ("sandwich", 1)]


def test_a_whatsapp_flows_answers_become_a_submission(stack: Stack, graph: GraphStub, db: Engine) -> None:
    ann = Person()
    payload = ann.fixture("nfm_reply")
    assert stack.post(payload).status_code == 200
    assert handled(db, first_wamid(payload)).outcome == "submitted"
    with db.connect() as conn:
        [submission] = conn.execute(select(Submission).where(Submission.user_key == ann.bsuid)).all()
    assert submission.template_name == "whatsapp_flow"
    assert submission.answers == {
        "flow_token": "booking-7f3a",
        "party_size": "4",
        "date": "2026-12-24",
        "notes": "window seat",
    }
    # Read, and never answered with the fallback: the turn queued the read receipt alone.
    with db.connect() as conn:
        queued = conn.execute(
            select(OutboundMessage.kind).where(OutboundMessage.inbound_wamid == first_wamid(payload))
        ).all()
    assert [k for (k,) in queued] == ["mark_read"]


def notify(stack: Stack, to: str, name: str, parameters: list[str]) -> requests.Response:
    """POST a template notification to the notifications API of the running stack."""
    payload = {
        "to": to,
        "idempotency_key": f"e2e:{uuid.uuid4()}",
        "template": {"name": name, "language": "en_US", "parameters": parameters},
        "phone_number_id": PHONE_NUMBER_ID,  # for a customer who never wrote: the number it goes from
    }
    return requests.post(f"{stack.base_url}/admin/api/notifications", json=payload, headers=AUTH, timeout=10)


def refused(stack: Stack, to: str, name: str, parameters: list[str]) -> str:
    """The API's 409 message for a template notification it will not send (nothing queued)."""
    answer = notify(stack, to, name, parameters)
    assert answer.status_code == 409, answer.text
    return answer.json()["error"]["message"]


def template_says(stack: Stack, db: Engine, fixture: str, **value: Any) -> None:
    """Post one of Meta's template webhooks (fields of its value overridden) and wait until stored."""
    payload = json.loads((FIXTURES / f"{fixture}.json").read_text(encoding="utf-8"))
    payload["entry"][0]["changes"][0]["value"].update(value)
    assert stack.post(payload).status_code == 200
    change = payload["entry"][0]["changes"][0]["value"]
    name, want = (
        change["message_template_name"],
        {"status": change.get("event"), "category": change.get("new_category")},
    )

    def stored() -> bool:
        with db.connect() as conn:
            row = conn.execute(select(MessageTemplateStatus).where(MessageTemplateStatus.name == name)).first()
        return row is not None and all(getattr(row, k) == v for k, v in want.items() if v is not None)

    wait_until(stored, TIMEOUT, f"{fixture} stored")


def test_a_stop_of_promotions_makes_a_marketing_template_409(stack: Stack, graph: GraphStub, db: Engine) -> None:
    ann, bob = Person(), Person()
    assert stack.post(ann.fixture("user_preferences_stop")).status_code == 200

    def stopped() -> bool:
        with db.connect() as conn:
            since = conn.execute(select(Contact.marketing_opted_out_at).where(Contact.user_key == ann.bsuid)).scalar()
        return since is not None

    wait_until(stopped, TIMEOUT, "the stop stored")
    # Meta moves order_reminder to MARKETING (the shipped catalogue declares no marketing template).
    template_says(stack, db, "template_category_update", new_category="MARKETING")
    try:
        assert "stopped marketing messages" in refused(stack, ann.bsuid, "order_reminder", ["Ann"])
        with db.connect() as conn:
            queued = conn.execute(select(OutboundMessage.id).where(OutboundMessage.user_key == ann.bsuid)).all()
        assert queued == []  # the refusal queued nothing
        # A customer who did not stop still gets it.
        created = notify(stack, bob.phone, "order_reminder", ["Bob"])
        assert created.status_code == 202 and created.json()["status"] == "pending", created.text
        assert stack.post(ann.fixture("user_preferences_resume")).status_code == 200
        wait_until(lambda: not stopped(), TIMEOUT, "the resume stored")
    finally:  # the stack is shared: leave the template as Meta first had it
        template_says(stack, db, "template_category_update", new_category="UTILITY", previous_category="MARKETING")


def test_a_paused_template_409s_until_meta_reinstates_it(stack: Stack, db: Engine) -> None:
    ann = Person()
    template_says(stack, db, "template_status_paused")
    try:
        message = refused(stack, ann.phone, "order_ready", ["ORD-000001"])
        assert message.startswith("the message template order_ready (en_US) is PAUSED")
    finally:  # the stack is shared: other tests send order_ready
        template_says(stack, db, "template_status_approved")
