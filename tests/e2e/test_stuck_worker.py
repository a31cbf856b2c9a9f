"""A worker that stops consuming is seen, and stopped so it is restarted; nothing is lost.

The consuming process of the inbound worker is frozen (SIGSTOP): connected as far as
Redis can tell, taking nothing, as a worker whose consumer lost its place after a broker
restart. Then:

- its health check (``python -m worker.health``, compose's healthcheck command) fails,
  the other worker's passes, and after ``--restart-after`` failures in a row the check
  stops the worker (SIGTERM), which is what makes compose's ``restart`` replace it;
- the receiver's ``/readyz`` turns 503 naming ``queues`` once a webhook has waited
  longer than ``PARLEY_QUEUE_FAULT_STALL_SECONDS``, and the worker metric
  ``parley_queue_oldest_age_seconds`` shows the age;
- a fresh worker takes the waiting webhook and it is answered, once.

On the fault stack (tests/e2e/conftest.py): the test freezes and replaces a worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import FAULT_STALL_SECONDS
from tests.e2e.test_pipeline import new_phone, wait_replies
from tests.support.stack import BIN, ROOT, Stack, wait_until
from tests.support.webhooks import contact, message, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def stack(fault_stack: Stack) -> Stack:
    return fault_stack


def health_check(stack: Stack, worker: str, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "worker.health",
            stack.nodes[worker],
            "--timeout",
            "3",
            "--state",
            str(state),
            *extra,
        ],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def readyz(stack: Stack) -> tuple[int, dict]:
    response = requests.get(f"{stack.base_url}/readyz", timeout=10)
    return response.status_code, response.json()


def oldest_age_metric(stack: Stack, queue: str) -> float | None:
    """``parley_queue_oldest_age_seconds{queue=...}`` from the outbound worker's /metrics."""
    text = requests.get(f"http://127.0.0.1:{stack.worker_metrics_ports[1]}/metrics", timeout=5).text
    prefix = f'parley_queue_oldest_age_seconds{{queue="{queue}"}} '
    values = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    return values[0] if values else None


def test_a_frozen_consumer_fails_its_health_check_and_is_replaced(stack: Stack, tmp_path: Path) -> None:
    assert readyz(stack)[0] == 200
    assert oldest_age_metric(stack, "inbound") == 0
    worker = stack.procs["worker1"]
    state = tmp_path / "worker1-health"
    os.kill(worker.pid, signal.SIGSTOP)  # the main process: it holds the consumer
    # A BRPOP sent just before the freeze times out on the server within 1 s (kombu's
    # brpop_timeout); after that nothing pops the queue, so the webhook waits in it.
    time.sleep(1.5)
    try:
        user = new_phone()
        payload = webhook([message(user, "hi")], [contact(user)])
        assert stack.post(payload).status_code == 200  # the receiver cannot know yet

        first = health_check(stack, "worker1", state, "--restart-after", "2", "--pid", str(worker.pid))
        assert first.returncode == 1 and "not consuming (1 in a row)" in first.stderr, first.stderr
        assert worker.poll() is None, "one failure must not stop the worker"
        assert health_check(stack, "worker2", tmp_path / "worker2-health").returncode == 0, "the sender still consumes"

        _, body = wait_until(lambda: (r := readyz(stack))[0] == 503 and r, 30, "/readyz to see the stall")
        assert body["checks"]["queues"] == "failed: QueueStalled"
        assert body["checks"]["broker"] == body["checks"]["database"] == "ok"
        age = oldest_age_metric(stack, "inbound")
        assert age is not None and age >= FAULT_STALL_SECONDS

        second = health_check(stack, "worker1", state, "--restart-after", "2", "--pid", str(worker.pid))
        assert second.returncode == 1 and "stopping the worker" in second.stderr, second.stderr
    finally:
        os.kill(worker.pid, signal.SIGCONT)  # the SIGTERM the check sent is delivered now
    # Warm shutdown: the worker exits by itself, and a restart policy would start a new one.
    assert worker.wait(timeout=60) is not None
    stack.procs.pop("worker1")
    stack.start_worker(1)
    stack.wait_workers_consume(60)
    assert len(wait_replies(stack.stub, user, 1, timeout=60)) == 1
    wait_until(lambda: readyz(stack)[0] == 200, 30, "/readyz ready again")
