"""People in the loop on the running system: a customer asks for a person, a person answers.

Real gunicorn, Celery workers, Beat, Redis, Postgres and the stub Graph API, plus an events
receiver on loopback that refuses the first two attempts of every event (as a helpdesk that
is briefly down would). This module runs its own stack because it needs events on, and a
quick Beat for the timeout release.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from conversation.handoff_models import Handoff
from conversation.models import InboundMessage, OutboundMessage, utcnow
from settings import DEV_ADMIN_TOKEN
from tests.support.database import fresh_database
from tests.support.event_receiver import Receiver
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack, new_workdir, require_redis_server, wait_until
from tests.support.webhooks import contact, message, new_phone, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 30
# Two refusals, then backoffs of 5 and 10 s, with Beat's delivery run every 5 s.
EVENT_TIMEOUT = 60
SECRET = "e2e-events-secret"
AUTH = {"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"}
PROMPT = "Okay, a person from our team will answer you here. Write your message whenever you like."


@dataclass
class HandoffStack(Stack):
    events_url: str = ""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            PARLEY_EVENTS_URL=self.events_url,
            PARLEY_EVENTS_SECRET=SECRET,
            PARLEY_HANDOFF_TIMEOUT_HOURS="1",
            PARLEY_EXPIRE_INTERVAL_SECONDS="1",  # Beat's timeout release runs every second
        )
        return env


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver(SECRET, fail_first=2)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stack(receiver: Receiver) -> Iterator[Stack]:
    require_redis_server()
    with fresh_database() as url:
        stub = GraphStub().start()
        running = HandoffStack(database_url=url, stub=stub, workdir=new_workdir(), events_url=receiver.url)
        try:
            running.start()
            yield running
        finally:
            running.stop_all()
            stub.stop()


def replies(graph: GraphStub, phone: str) -> list[Any]:
    return [r for r in graph.requests() if r.kind == "message" and r.recipient in {phone, "+" + phone}]


def wait_replies(graph: GraphStub, phone: str, n: int) -> list[Any]:
    graph.wait_for(lambda _: len(replies(graph, phone)) >= n, TIMEOUT)
    return replies(graph, phone)


def text_of(request: Any) -> str:
    body = request.body
    return body["text"]["body"] if body["type"] == "text" else body["interactive"]["body"]["text"]


def say(stack: Stack, phone: str, text: str | None = None, tap: tuple[str, str] | None = None) -> str:
    item = message(phone, text=text, tap=tap)
    assert stack.post(webhook([item], [contact(phone, name="Ann")])).status_code == 200
    return item["id"]


def outcome(db: Engine, wamid: str) -> str | None:
    with db.connect() as conn:
        return conn.execute(select(InboundMessage.outcome).where(InboundMessage.wamid == wamid)).scalar()


def handled(db: Engine, wamid: str) -> str:
    return wait_until(lambda: outcome(db, wamid), TIMEOUT, f"message {wamid} handled")


def bot_messages(db: Engine, phone: str) -> int:
    with db.connect() as conn:
        rows = conn.execute(
            select(OutboundMessage.id).where(OutboundMessage.user_key == phone, OutboundMessage.kind == "message")
        )
        return len(rows.all())


def api(stack: Stack, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{stack.base_url}/admin/api/handoffs{path}", headers=AUTH, timeout=10, **kwargs)


def waiting_users(stack: Stack) -> dict[str, dict[str, Any]]:
    answer = api(stack, "GET", "")
    assert answer.status_code == 200
    return {row["user"]: row for row in answer.json()}


def hand_off_through_support(stack: Stack, graph: GraphStub, phone: str) -> None:
    say(stack, phone, "hi")
    wait_replies(graph, phone, 1)
    say(stack, phone, tap=("support", "Support"))
    wait_replies(graph, phone, 2)
    say(stack, phone, tap=("contact", "Contact us"))
    assert text_of(wait_replies(graph, phone, 3)[2]) == PROMPT


def test_contact_a_person_answers_and_release_gives_the_customer_back_to_the_bot(
    stack: Stack, graph: GraphStub, db: Engine, receiver: Receiver
) -> None:
    phone = new_phone()
    hand_off_through_support(stack, graph, phone)

    asked = say(stack, phone, "anyone there?")
    assert handled(db, asked) == "waiting"
    # Committed with its turn: a reply would be in the outbox by now, and there is none.
    assert bot_messages(db, phone) == 3
    assert waiting_users(stack)[phone]["last_message"] == "anyone there?"
    assert waiting_users(stack)[phone]["waiting"] == 2  # the tap on Contact and this one
    transcript = api(stack, "GET", f"/{phone}/messages").json()
    assert [line["direction"] for line in transcript] == ["in", "out", "in", "out", "in", "out", "in"]
    assert transcript[-2]["text"] == PROMPT and transcript[-1]["text"] == "anyone there?"

    sent = api(stack, "POST", f"/{phone}/messages", json={"text": "Hi Ann, Carla here. How can I help?"})
    assert sent.status_code == 202
    assert text_of(wait_replies(graph, phone, 4)[3]) == "Hi Ann, Carla here. How can I help?"
    assert waiting_users(stack)[phone]["waiting"] == 0

    assert api(stack, "POST", f"/{phone}/release").status_code == 200
    assert phone not in waiting_users(stack)
    assert api(stack, "POST", f"/{phone}/messages", json={"text": "too late"}).status_code == 409
    say(stack, phone, "hi")
    assert text_of(wait_replies(graph, phone, 5)[4]).startswith("Hi Ann!")

    # The helpdesk hears of the handoff once, after refusing it twice, signed each time.
    wait_until(
        lambda: [e for e in receiver.of_kind("handoff.requested") if e["data"]["user"] == phone],
        EVENT_TIMEOUT,
        "handoff.requested delivered",
    )
    (event,) = [e for e in receiver.of_kind("handoff.requested") if e["data"]["user"] == phone]
    assert (event["data"]["template"], event["data"]["step"]) == ("support", "contact_person")
    assert len(receiver.attempts[event["id"]]) == 3 and receiver.bad_signatures == 0


def test_a_handoff_nobody_answers_is_released_by_beat(stack: Stack, graph: GraphStub, db: Engine) -> None:
    phone = new_phone()
    asked = say(stack, phone, "agent")
    assert handled(db, asked) == "handed_off"
    assert phone in waiting_users(stack)
    with db.begin() as conn:  # two hours ago, past PARLEY_HANDOFF_TIMEOUT_HOURS=1
        conn.execute(
            update(Handoff)
            .where(Handoff.user_key == phone)
            .values(requested_at=utcnow() - timedelta(hours=2), last_person_at=None)
        )

    def released() -> str | None:
        with db.connect() as conn:
            return conn.execute(select(Handoff.release_reason).where(Handoff.user_key == phone)).scalar()

    assert wait_until(released, TIMEOUT, "the timeout release") == "timeout"
    assert phone not in waiting_users(stack)
    before = len(wait_replies(graph, phone, 1))
    say(stack, phone, "hi")
    assert text_of(wait_replies(graph, phone, before + 1)[before]).startswith("Hi Ann!")


def test_completed_flows_and_failed_messages_reach_the_receiver_once_each(
    stack: Stack, graph: GraphStub, receiver: Receiver
) -> None:
    phone = new_phone()
    say(stack, phone, "support")
    wait_replies(graph, phone, 1)
    say(stack, phone, tap=("faq", "FAQ"))
    wait_replies(graph, phone, 2)
    graph.push_error(code=131026, recipient="+" + phone, kind="message")  # undeliverable, for good
    say(stack, phone, tap=("done", "That's all"))

    def mine(kind: str) -> list[dict[str, Any]]:
        return [e for e in receiver.of_kind(kind) if e["data"]["user"] == phone]

    wait_until(lambda: mine("flow.completed") and mine("message.failed"), EVENT_TIMEOUT, "both events delivered")
    (completed,) = mine("flow.completed")
    assert completed["data"]["template"] == "support"
    assert completed["data"]["answers"]["topic"] == "faq" and completed["data"]["answers"]["faq"] == "done"
    (failed,) = mine("message.failed")
    assert failed["data"]["code"] == 131026
    for event in (completed, failed):
        assert len(receiver.attempts[event["id"]]) == 3
    assert receiver.bad_signatures == 0
