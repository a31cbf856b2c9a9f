"""With the broker down the receiver answers 503 (Meta retries); nothing is lost after.

This module stops Redis, so it runs on the fault stack (tests/e2e/conftest.py), not the
session's: a worker that did not come back could otherwise fail every e2e test after it. Many restarts in every shape:
tests/reliability/test_redis_restart.py (make chaos).
"""

from __future__ import annotations

import pytest

from tests.e2e.test_pipeline import new_phone, wait_replies
from tests.support.stack import Stack
from tests.support.webhooks import contact, message, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def stack(fault_stack: Stack) -> Stack:
    return fault_stack


def test_broker_stopped_means_503_then_recovery(stack: Stack) -> None:
    user = new_phone()
    payload = webhook([message(user, "hi")], [contact(user)])
    stack.stop_redis()
    try:
        assert stack.post(payload).status_code == 503
    finally:
        stack.start_redis()
    # Every worker takes work again (a probe through each), not only the one that answers.
    stack.wait_workers_consume(30)
    # Meta retries the same POST later: now it is queued and answered, once.
    assert stack.post(payload).status_code == 200
    assert len(wait_replies(stack.stub, user, 1, timeout=60)) == 1
