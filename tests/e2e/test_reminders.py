"""A flow step's reminder on the running system: due time in Postgres, swept by Beat (two
of them here), sent once even though the worker that runs the sweep was down when it
fell due. Real gunicorn, Celery workers, Beat, Redis, Postgres and the stub Graph API.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.engine import Engine

from conversation.models import ConversationState, OutboundMessage
from settings import DEV_ADMIN_TOKEN
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack, wait_until
from tests.support.webhooks import contact, message, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 30
SWEEP_SECONDS = 2  # PARLEY_SWEEP_INTERVAL_SECONDS of the stack
NUDGE = {
    "template_name": "e2e_nudge",
    "template_type": "text",
    "trigger_keywords": ["nudgeme"],
    "menu_structure": {
        "type": "text",
        "body": {"text": "What is your name?"},
        "steps": {
            "initial": {
                "context_key": "name",
                "next_step": "done",
                "remind_after": "4s",
                "reminder": "Still there, {profile_name}? Tell us your name to go on.",
            },
            "done": {"prompt": "Thanks {name}!", "end_conversation": True},
        },
    },
}


def texts_to(graph: GraphStub, user: str) -> list[str]:
    return [
        r.body["text"]["body"]
        for r in graph.requests()
        if r.kind == "message" and r.recipient == f"+{user}" and r.status == 200 and r.body["type"] == "text"
    ]


def reminder_rows(db: Engine, user: str) -> list[OutboundMessage]:
    with db.connect() as conn:
        stmt = select(OutboundMessage).where(OutboundMessage.user_key == user, OutboundMessage.origin == "reminder")
        return conn.execute(stmt).all()


def test_a_reminder_is_sent_once_after_a_worker_restart_with_two_beats(stack: Stack, graph: GraphStub, db: Engine):
    auth = {"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"}
    loaded = requests.post(f"{stack.base_url}/admin/api/templates", json=NUDGE, headers=auth, timeout=10)
    assert loaded.status_code in (200, 201), loaded.text
    user = "1555" + str(uuid.uuid4().int)[:7]
    assert stack.post(webhook([message(user, text="nudgeme")], [contact(user, name="Ann")])).status_code == 200
    graph.wait_for(lambda _: texts_to(graph, user) == ["What is your name?"], TIMEOUT)
    with db.connect() as conn:
        due = conn.scalar(select(ConversationState.remind_at).where(ConversationState.user_key == user))
    assert due is not None

    stack.stop("worker1")  # the worker that runs Beat's jobs: the reminder falls due while it is down
    stack.start_beat("beat2")
    try:
        wait_until(lambda: time.time() > due.timestamp() + 2 * SWEEP_SECONDS, 20, "the due time to pass")
        assert texts_to(graph, user) == ["What is your name?"] and reminder_rows(db, user) == []
        stack.start_worker(1)
        graph.wait_for(lambda _: len(texts_to(graph, user)) == 2, TIMEOUT)
        assert texts_to(graph, user)[1] == "Still there, Ann? Tell us your name to go on."
        # Both Beats' queued sweeps run now, and more come: none sends it again.
        restarted = time.time()
        wait_until(lambda: time.time() > restarted + 3 * SWEEP_SECONDS, 20, "more sweeps")
        assert len(reminder_rows(db, user)) == 1 and len(texts_to(graph, user)) == 2
    finally:
        stack.stop("beat2")
        if "worker1" not in stack.procs:
            stack.start_worker(1)
    assert stack.post(webhook([message(user, text="Ann")], [contact(user, name="Ann")])).status_code == 200
    graph.wait_for(lambda _: texts_to(graph, user)[-1:] == ["Thanks Ann!"], TIMEOUT)
