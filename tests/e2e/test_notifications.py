"""Notifications on the running system: the admin API, the CLI and the customer's own
words, through gunicorn, two Celery workers, Beat, Redis, Postgres and the stub Graph API.

Each test uses customers of its own, so tests do not see each other's messages.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.engine import Engine

from conversation.models import OutboundMessage
from settings import DEV_ADMIN_TOKEN
from tests.support.graph_stub import GraphStub
from tests.support.stack import BIN, ROOT, Stack, wait_until
from tests.support.webhooks import PHONE_NUMBER_ID, contact, message, new_phone, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 30
AUTH = {"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"}


def notify(stack: Stack, to: str, key: str | None = None, **body: Any) -> requests.Response:
    payload = {"to": to, "idempotency_key": key or f"e2e:{uuid.uuid4()}", **body}
    return requests.post(f"{stack.base_url}/admin/api/notifications", json=payload, headers=AUTH, timeout=10)


def order_ready(number: str) -> dict[str, Any]:
    return {"template": {"name": "order_ready", "language": "en_US", "parameters": [number]}}


def status_of(stack: Stack, notification_id: int) -> dict[str, Any]:
    answer = requests.get(f"{stack.base_url}/admin/api/notifications/{notification_id}", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def sent_to(graph: GraphStub, user: str) -> list[Any]:
    """Messages (not read receipts) Graph answered 200 for ``user``, in order."""
    return [r for r in graph.requests() if r.kind == "message" and r.recipient == f"+{user}" and r.status == 200]


def wait_sent(graph: GraphStub, user: str, n: int) -> list[Any]:
    graph.wait_for(lambda _: len(sent_to(graph, user)) >= n, TIMEOUT)
    return sent_to(graph, user)


def say(stack: Stack, user: str, text: str, ts: int | None = None) -> dict[str, Any]:
    item = message(user, text=text, ts=ts)
    assert stack.post(webhook([item], [contact(user)])).status_code == 200
    return item


def what(request: Any) -> str:
    body = request.body
    if body["type"] == "template":
        return "template " + body["template"]["name"]
    return body["text"]["body"] if body["type"] == "text" else body["interactive"]["body"]["text"]


def rows(db: Engine, user: str) -> list[Any]:
    with db.connect() as conn:
        stmt = select(OutboundMessage).where(OutboundMessage.user_key == user, OutboundMessage.kind == "message")
        return conn.execute(stmt.order_by(OutboundMessage.id)).all()


def test_a_template_goes_to_a_customer_who_never_wrote_and_its_statuses_follow(stack: Stack, graph: GraphStub) -> None:
    user = new_phone()
    answer = notify(stack, f"+{user}", phone_number_id=PHONE_NUMBER_ID, **order_ready("ORD-000002"))
    assert answer.status_code == 202 and answer.json()["status"] == "pending"
    [sent] = wait_sent(graph, user, 1)
    assert sent.path == f"/v25.0/{PHONE_NUMBER_ID}/messages"
    assert sent.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": f"+{user}",
        "type": "template",
        "template": {
            "name": "order_ready",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "ORD-000002"}]}],
        },
    }
    nid = answer.json()["id"]
    wait_until(lambda: status_of(stack, nid)["status"] == "sent", 10, "sent")
    assert status_of(stack, nid)["wamid"] == sent.wamid

    def receipt(name: str, ts: int, **extra: Any) -> dict[str, Any]:
        return {"id": sent.wamid, "status": name, "timestamp": str(ts), "recipient_id": user, **extra}

    assert stack.post(webhook(statuses=[receipt("delivered", 1_800_000_005)])).status_code == 200
    wait_until(lambda: status_of(stack, nid)["status"] == "delivered", 10, "delivered")
    assert stack.post(webhook(statuses=[receipt("read", 1_800_000_009)])).status_code == 200
    wait_until(lambda: status_of(stack, nid)["status"] == "read", 10, "read")

    other = new_phone()
    failing = notify(stack, other, phone_number_id=PHONE_NUMBER_ID, **order_ready("ORD-000003")).json()["id"]
    [gone] = wait_sent(graph, other, 1)
    wait_until(lambda: status_of(stack, failing)["wamid"] == gone.wamid, 10, "wamid stored")  # as Meta's would
    failed = {"id": gone.wamid, "status": "failed", "timestamp": "1800000020", "recipient_id": other,
              "errors": [{"code": 131026, "title": "Message undeliverable"}]}  # fmt: skip
    assert stack.post(webhook(statuses=[failed])).status_code == 200
    shown = wait_until(lambda: (s := status_of(stack, failing))["status"] == "failed" and s, 10, "failed")
    assert shown["error"]["code"] == 131026


def test_a_text_is_refused_with_409_outside_the_window_and_sent_inside_it(stack: Stack, graph: GraphStub) -> None:
    user = new_phone()
    closed = notify(stack, user, text="Your table is ready", phone_number_id=PHONE_NUMBER_ID)
    assert closed.status_code == 409 and "window is closed" in closed.json()["error"]["message"]
    say(stack, user, "hi")
    wait_sent(graph, user, 1)  # the menu: the customer wrote, the window is open
    inside = notify(stack, user, text="Your table is ready")
    assert inside.status_code == 202, inside.text
    assert [what(r) for r in wait_sent(graph, user, 2)][1] == "Your table is ready"


def test_a_reply_outside_the_window_is_never_attempted(stack: Stack, graph: GraphStub, db: Engine) -> None:
    """Meta delivered the message a day late: the menu it asks for fails at once, with the reason."""
    user = new_phone()
    item = say(stack, user, "hi", ts=int(time.time()) - 25 * 3600)
    graph.wait_for(
        lambda rs: any(r.kind == "mark_read" and r.body.get("message_id") == item["id"] for r in rs), TIMEOUT
    )
    [row] = wait_until(lambda: (r := rows(db, user)) and r[0].status == "failed" and r, TIMEOUT, "failed at once")
    assert row.last_error_code == 131047 and row.attempts == 1
    assert row.last_error.startswith("the 24-hour customer service window closed at ")
    assert sent_to(graph, user) == [] and [r for r in graph.requests() if r.recipient == f"+{user}"] == []


def test_the_same_idempotency_key_three_times_at_once_is_sent_once(stack: Stack, graph: GraphStub, db: Engine) -> None:
    user = new_phone()
    key = f"e2e:{uuid.uuid4()}"
    answers: list[requests.Response] = []
    start = threading.Barrier(3)

    def post() -> None:
        start.wait()
        answers.append(notify(stack, user, key=key, phone_number_id=PHONE_NUMBER_ID, **order_ready("ORD-000042")))

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 200, 202]
    assert len({a.json()["id"] for a in answers}) == 1
    wait_sent(graph, user, 1)
    wait_until(lambda: all(r.status == "accepted" for r in rows(db, user)), 10, "accepted")
    again = notify(stack, user, key=key, phone_number_id=PHONE_NUMBER_ID, **order_ready("ORD-000042"))
    assert again.status_code == 200 and again.json()["id"] == answers[0].json()["id"]
    assert len(rows(db, user)) == 1 and len(sent_to(graph, user)) == 1


def test_a_reply_and_a_notification_go_in_the_order_they_were_made(stack: Stack, graph: GraphStub, db: Engine) -> None:
    user = new_phone()
    graph.push(status=500, recipient=f"+{user}", kind="message")  # the reply waits for a retry
    say(stack, user, "hi")
    wait_until(lambda: (r := rows(db, user)) and r[0].attempts >= 1, TIMEOUT, "first attempt at the reply")
    assert notify(stack, user, text="Psst: coffee is half price today").status_code == 202
    got = wait_sent(graph, user, 2)
    assert [what(r) for r in got] == ["Hi Test User! How can we help you today?", "Psst: coffee is half price today"]
    attempts = [r.status for r in graph.requests() if r.kind == "message" and r.recipient == f"+{user}"]
    assert attempts == [500, 200, 200]


def test_stop_then_409_then_subscribe_then_sent(stack: Stack, graph: GraphStub) -> None:
    user = new_phone()
    say(stack, user, "hi")
    wait_sent(graph, user, 1)
    say(stack, user, "STOP")
    got = wait_sent(graph, user, 2)
    assert what(got[1]) == "You won't get notifications from us any more. Send *subscribe* to get them again."
    refused = notify(stack, user, **order_ready("ORD-000007"))
    assert refused.status_code == 409 and "opted out" in refused.json()["error"]["message"]
    shown = requests.get(f"{stack.base_url}/admin/api/contacts/{user}", headers=AUTH, timeout=10).json()
    assert shown["opted_out"] is True and shown["windows"][0]["open"] is True
    say(stack, user, "subscribe")
    assert what(wait_sent(graph, user, 3)[2]) == "You're subscribed again. Send *stop* any time to stop notifications."
    assert notify(stack, user, **order_ready("ORD-000007")).status_code == 202
    assert what(wait_sent(graph, user, 4)[3]) == "template order_ready"


def test_order_ready_after_a_completed_coffee_order(stack: Stack, graph: GraphStub) -> None:
    user = new_phone()
    for n, said in enumerate(["hi", "order", "coffee", "2", "confirm"], start=1):
        if said in ("coffee", "confirm"):
            item = message(user, tap=(said, said.title()))
            assert stack.post(webhook([item], [contact(user)])).status_code == 200
        else:
            say(stack, user, said)
        got = wait_sent(graph, user, n)
    placed = what(got[-1])
    assert "We'll let you know when it's ready" in placed, placed
    number = re.search(r"ORD-\d{6}", placed).group(0)
    command = [str(BIN / "flask"), "--app", "webhook", "orders", "ready", number]
    done = subprocess.run(command, cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"idempotency key order_ready:{number}" in done.stdout
    notice = wait_sent(graph, user, len(got) + 1)[-1]
    assert notice.body["template"]["name"] == "order_ready"
    assert notice.body["template"]["components"][0]["parameters"] == [{"type": "text", "text": number}]
    twice = subprocess.run(command, cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=60)
    assert twice.returncode == 0 and "was queued before" in twice.stdout
