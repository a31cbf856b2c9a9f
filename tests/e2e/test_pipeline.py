"""The running system, driven like Meta drives it: signed webhooks in, Graph API calls out.

Real gunicorn, two Celery worker processes, Beat, Redis, Postgres and the stub Graph API
on loopback. Each test uses its own customers, so tests do not see each other's replies.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from conversation.models import ConversationState, InboundMessage, Order, OutboundMessage, Submission
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack, wait_until
from tests.support.webhooks import ACCESS_TOKEN, PHONE_NUMBER_ID, combine, contact, message, new_phone, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 30


def replies(graph: GraphStub, recipient: str) -> list[Any]:
    """Messages (not read receipts) sent to ``recipient`` (phone digits or BSUID), in order."""
    want = {recipient, "+" + recipient}
    return [r for r in graph.requests() if r.kind == "message" and r.recipient in want]


def wait_replies(graph: GraphStub, recipient: str, n: int, timeout: float = TIMEOUT) -> list[Any]:
    graph.wait_for(lambda _: len(replies(graph, recipient)) >= n, timeout)
    return replies(graph, recipient)


def say(stack: Stack, user: str, text: str | None = None, tap: tuple[str, str] | None = None, **kw: Any) -> dict:
    item = message(user, text=text, tap=tap)
    payload = webhook([item], [contact(user)], **kw)
    assert stack.post(payload).status_code == 200
    return item


def body_text(request: Any) -> str:
    body = request.body
    return body["text"]["body"] if body["type"] == "text" else body["interactive"]["body"]["text"]


def conversation(db: Engine, user_key: str) -> ConversationState | None:
    with db.connect() as conn:
        return conn.execute(select(ConversationState).where(ConversationState.user_key == user_key)).first()


def outbound_rows(db: Engine, user_key: str) -> list[Any]:
    with db.connect() as conn:
        return conn.execute(
            select(OutboundMessage)
            .where(OutboundMessage.user_key == user_key, OutboundMessage.kind == "message")
            .order_by(OutboundMessage.id)
        ).all()


def test_coffee_order_from_hi_to_order_number(stack: Stack, graph: GraphStub, db: Engine) -> None:
    user = new_phone()
    hi = say(stack, user, "hi")
    [first] = wait_replies(graph, user, 1)
    assert first.path == f"/v25.0/{PHONE_NUMBER_ID}/messages"
    assert first.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert first.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": f"+{user}",
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "Welcome to Parley Café"},
            "body": {"text": "Hi Test User! How can we help you today?"},
            "footer": {"text": "Tap an option, or type cancel to stop"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "new_order", "title": "New Order"}},
                    {"type": "reply", "reply": {"id": "support", "title": "Support"}},
                    {"type": "reply", "reply": {"id": "account", "title": "My Account"}},
                ]
            },
        },
    }
    read = graph.wait_for(lambda rs: any(r.kind == "mark_read" and r.body.get("message_id") == hi["id"] for r in rs))
    assert read
    wait_until(lambda: outbound_rows(db, user) and outbound_rows(db, user)[0].wamid == first.wamid, 10, "wamid stored")
    assert (conversation(db, user).conversation_flow, conversation(db, user).current_step) == ("main_menu", "initial")

    steps = [
        ({"tap": ("new_order", "New Order")}, "What would you like to order?", ("new_order", "initial")),
        ({"tap": ("coffee", "Coffee")}, "How many Coffee? (Enter a number)", ("new_order", "quantity")),
        ({"text": "2"}, "You're ordering 2 x Coffee. Shall I place the order?", ("new_order", "confirmation")),
    ]
    for n, (said, expected, state) in enumerate(steps, start=2):
        say(stack, user, **said)
        got = wait_replies(graph, user, n)
        assert body_text(got[-1]) == expected
        assert len(got) == n
        conv = conversation(db, user)
        assert (conv.conversation_flow, conv.current_step) == state
    assert got[1].body["interactive"]["type"] == "list"
    assert [r["id"] for s in got[1].body["interactive"]["action"]["sections"] for r in s["rows"]] == [
        "coffee", "tea", "juice", "sandwich", "salad", "pasta",
    ]  # fmt: skip

    say(stack, user, tap=("confirm", "Confirm"))
    final = wait_replies(graph, user, 5)[-1]
    number = re.search(r"ORD-\d{6}", body_text(final)).group(0)
    wait_until(lambda: conversation(db, user) is None, 10, "conversation ended")
    with db.connect() as conn:
        sub = conn.execute(select(Submission).where(Submission.user_key == user)).one()
        order = conn.execute(select(Order).where(Order.user_key == user)).one()
    assert sub.answers["order_id"] == number == f"ORD-{order.id:06d}"
    assert sub.answers["product"] == "coffee" and sub.answers["quantity"] == 2
    wait_until(lambda: all(r.status == "accepted" and r.wamid for r in outbound_rows(db, user)), 10, "all accepted")


def test_redelivered_message_is_answered_once(stack: Stack, graph: GraphStub, db: Engine) -> None:
    sequential, parallel = new_phone(), new_phone()
    payload = webhook([message(sequential, "hi")], [contact(sequential)])
    for _ in range(3):
        assert stack.post(payload).status_code == 200
    payload2 = webhook([message(parallel, "hi")], [contact(parallel)])
    threads = [threading.Thread(target=stack.post, args=(payload2,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_replies(graph, sequential, 1)
    wait_replies(graph, parallel, 1)
    with db.connect() as conn:
        inbound = conn.execute(select(InboundMessage).where(InboundMessage.user_key.in_([sequential, parallel]))).all()
    assert len(inbound) == 2
    # Give redeliveries every chance to produce a second reply, then count.
    wait_until(lambda: len(outbound_rows(db, parallel)) >= 1, 10, "outbox row")
    graph.wait_for(lambda rs: sum(r.kind == "mark_read" for r in rs) >= 2, TIMEOUT)
    assert len(replies(graph, sequential)) == 1 and len(replies(graph, parallel)) == 1
    assert len(outbound_rows(db, sequential)) == 1 and len(outbound_rows(db, parallel)) == 1


def test_one_post_with_two_users_and_two_business_numbers(stack: Stack, graph: GraphStub) -> None:
    ann, bob = new_phone(), new_phone()
    both = combine(
        webhook([message(ann, "order")], [contact(ann)], phone_number_id="200000000000002"),
        webhook([message(bob, "support")], [contact(bob)], phone_number_id="300000000000003"),
    )
    assert stack.post(both).status_code == 200
    [to_ann] = wait_replies(graph, ann, 1)
    [to_bob] = wait_replies(graph, bob, 1)
    assert to_ann.phone_number_id == "200000000000002" and body_text(to_ann) == "What would you like to order?"
    assert to_bob.phone_number_id == "300000000000003" and body_text(to_bob) == "How can we help?"

    carol, dan = new_phone(), new_phone()
    one_change = webhook([message(carol, "hi"), message(dan, "help")], [contact(carol), contact(dan)])
    assert stack.post(one_change).status_code == 200
    assert body_text(wait_replies(graph, carol, 1)[0]).startswith("Hi Test User!")
    assert body_text(wait_replies(graph, dan, 1)[0]) == "How can we help?"


def test_username_user_is_answered_by_bsuid(stack: Stack, graph: GraphStub, db: Engine) -> None:
    bsuid = f"US.{uuid.uuid4().int % 10**19}"
    payload = webhook([message("", "hi")], [contact("", bsuid=bsuid)])
    assert stack.post(payload).status_code == 200
    [reply] = wait_replies(graph, bsuid, 1)
    assert reply.body["recipient"] == bsuid and "to" not in reply.body
    assert conversation(db, bsuid).user_id == bsuid


def test_statuses_never_move_backwards_and_failures_keep_the_code(stack: Stack, graph: GraphStub, db: Engine) -> None:
    user = new_phone()
    say(stack, user, "hi")
    wait_replies(graph, user, 1)
    row = wait_until(lambda: (r := outbound_rows(db, user)) and r[0].wamid and r[0], 10, "wamid stored")

    def status(name: str, ts: int, **extra: Any) -> dict:
        return {"id": row.wamid, "status": name, "timestamp": str(ts), "recipient_id": user, **extra}

    assert stack.post(webhook(statuses=[status("read", 1_800_000_010)])).status_code == 200
    assert stack.post(webhook(statuses=[status("delivered", 1_800_000_005)])).status_code == 200
    assert stack.post(webhook(statuses=[status("sent", 1_800_000_001)])).status_code == 200
    wait_until(lambda: outbound_rows(db, user)[0].status == "read", 10, "status read")
    # later stale statuses were processed too; give them a moment to (not) apply
    stack.post(webhook(statuses=[status("delivered", 1_800_000_006)]))
    graph.wait_for(lambda rs: True, 0.1)
    wait_until(lambda: outbound_rows(db, user)[0].status == "read", 3, "still read")

    other = new_phone()
    say(stack, other, "hi")
    wait_replies(graph, other, 1)
    row = wait_until(lambda: (r := outbound_rows(db, other)) and r[0].wamid and r[0], 10, "wamid stored")
    failed = {
        "id": row.wamid, "status": "failed", "timestamp": "1800000020", "recipient_id": other,
        "errors": [{"code": 131047, "title": "Re-engagement message"}],
    }  # fmt: skip
    assert stack.post(webhook(statuses=[failed])).status_code == 200
    done = wait_until(lambda: (r := outbound_rows(db, other)[0]).status == "failed" and r, 10, "failed status")
    assert done.last_error_code == 131047


def test_graph_500_then_200_sends_once(stack: Stack, graph: GraphStub, db: Engine) -> None:
    user = new_phone()
    graph.push(status=500, recipient=f"+{user}", kind="message")
    say(stack, user, "hi")
    graph.wait_for(
        lambda rs: any(r.recipient == f"+{user}" and r.status == 200 for r in rs if r.kind == "message"), TIMEOUT
    )
    attempts = replies(graph, user)
    assert [r.status for r in attempts] == [500, 200]
    row = wait_until(lambda: (r := outbound_rows(db, user)[0]).status == "accepted" and r, 10, "accepted")
    assert row.attempts == 2 and row.wamid == attempts[1].wamid


def test_throughput_limit_is_retried_later(stack: Stack, graph: GraphStub, db: Engine) -> None:
    user = new_phone()
    graph.push_error(code=130429, http_status=429, recipient=f"+{user}", kind="message")
    say(stack, user, "hi")
    graph.wait_for(lambda rs: [r.status for r in replies(graph, user)] == [429, 200], TIMEOUT)
    row = wait_until(lambda: (r := outbound_rows(db, user)[0]).status == "accepted" and r, 10, "accepted")
    assert row.attempts == 2


def test_closed_window_is_not_retried(stack: Stack, graph: GraphStub, db: Engine) -> None:
    user = new_phone()
    graph.push_error(code=131047, http_status=400, recipient=f"+{user}", kind="message")
    say(stack, user, "hi")
    row = wait_until(lambda: (r := outbound_rows(db, user)) and r[0].status == "failed" and r[0], TIMEOUT, "failed")
    assert row.last_error_code == 131047 and row.attempts == 1
    assert len(replies(graph, user)) == 1


def test_twenty_customers_at_once_get_every_reply_once_and_in_order(stack: Stack, graph: GraphStub) -> None:
    users = [new_phone() for _ in range(20)]
    script = [
        ({"text": "hi"}, re.escape("Hi Test User! How can we help you today?")),
        ({"tap": ("new_order", "New Order")}, re.escape("What would you like to order?")),
        ({"tap": ("tea", "Tea")}, re.escape("How many Tea? (Enter a number)")),
        ({"text": "3"}, re.escape("You're ordering 3 x Tea. Shall I place the order?")),
        ({"tap": ("confirm", "Confirm")}, r"Order placed! Your order number is ORD-\d{6}\..*"),
    ]
    errors: list[str] = []

    def customer(user: str) -> None:
        try:
            for n, (said, _) in enumerate(script, start=1):
                say(stack, user, **said)
                wait_replies(graph, user, n, timeout=60)
        except Exception as exc:
            errors.append(f"{user}: {exc}")

    threads = [threading.Thread(target=customer, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for user in users:
        got = [body_text(r) for r in replies(graph, user)]
        assert len(got) == len(script), f"{user}: {got}"
        for (_, expected), actual in zip(script, got, strict=True):
            assert re.fullmatch(expected, actual, re.S), f"{user}: {actual!r}"


def test_signature_and_body_checks_through_gunicorn(stack: Stack) -> None:
    payload = json.dumps(webhook([message(new_phone(), "hi")])).encode()
    assert stack.post(payload, signature="sha256=" + "0" * 64).status_code == 403
    assert stack.post(payload, signature=None).status_code == 401
    assert stack.post(b"not json").status_code == 400
    assert stack.post(b"x" * (3 * 1024 * 1024 + 1)).status_code == 413
