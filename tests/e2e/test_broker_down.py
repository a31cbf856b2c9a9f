"""With the broker down the receiver answers 503 (Meta retries); nothing is lost after."""

from __future__ import annotations

import pytest

from tests.e2e.test_pipeline import new_phone, wait_replies
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack, contact, message, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def test_broker_stopped_means_503_then_recovery(stack: Stack, graph: GraphStub) -> None:
    user = new_phone()
    payload = webhook([message(user, "hi")], [contact(user)])
    stack.stop_redis()
    try:
        assert stack.post(payload).status_code == 503
    finally:
        stack.start_redis()
    # Meta retries the same POST later: now it is queued and answered, once.
    assert stack.post(payload).status_code == 200
    assert len(wait_replies(graph, user, 1, timeout=60)) == 1
