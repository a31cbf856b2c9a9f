"""Redis restarted 24 times: after each restart every worker consumes again within seconds.

The production topology (``tests/support/stack.py``: a prefork worker on inbound and
maintenance, a threads sender on outbound, parley's own worker command and settings),
Redis persisting every write. Restarts cycle through six shapes: idle (SIGTERM, back at
once), idle with Redis down 2 s (SIGKILL), under load (webhooks posted throughout), with
a worker mid-task (a message whose handling and sending each stall 3 s, injected through
``worker/faults.py``), two restarts within a second, and a webhook posted while Redis is
down (503). After each restart a task is published to each queue and must be received by
the worker consuming that queue, and a health probe must round-trip through each
worker's own queue (``worker/health.py``). At the end every webhook the receiver
acknowledged has been answered: none lost.

Prints one line per restart and the summary (median and max time to resume).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from celery import Celery
from celery.utils.nodenames import worker_direct
from redis import Redis

from tests.e2e.test_pipeline import new_phone
from tests.reliability.harness import restore_unacked
from tests.support.database import fresh_database
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack, require_redis_server, started
from tests.support.webhooks import contact, message, webhook

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.timeout(900),  # 90 s when workers resume; a stalled run waits 10 s per restart
]

RESTARTS = 24
RESUME_WITHIN_SECONDS = 10.0
SLOW_TEXT = "slowpoke"
# A harmless task per queue, and the worker (process name) that consumes it.
QUEUE_PROBES = {
    "inbound": ("worker1", "parley.inbound.process_payload", ['{"object": "whatsapp_business_account", "entry": []}']),
    "maintenance": ("worker1", "parley.maintenance.sweep_outbox", []),
    "outbound": ("worker2", "parley.outbox.deliver", ["nobody-probe"]),
}


@dataclass
class SlowTaskStack(Stack):
    redis_aof: bool = True

    def env(self) -> dict[str, str]:
        env = super().env()
        # Only messages saying SLOW_TEXT stall, so a restart can land mid-task.
        env.update(
            PARLEY_FAULT_POINT="after_commit,after_send", PARLEY_FAULT_ACTION="sleep:3", PARLEY_FAULT_MATCH=SLOW_TEXT
        )
        return env


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    require_redis_server()
    with fresh_database() as url, started(SlowTaskStack, url, GraphStub()) as running:
        yield running


class Sender:
    """Posts a new customer's "hi" every 50 ms while running; remembers the ones acknowledged."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.acknowledged: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            user = new_phone()
            try:
                if self.stack.post(webhook([message(user, "hi")], [contact(user)])).status_code == 200:
                    self.acknowledged.append(user)
            except OSError:
                pass  # not acknowledged: Meta would retry, nothing was promised
            self._stop.wait(0.05)


class Prober:
    """Publishes probe tasks as any client would, and sees them arrive."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = Celery("restart-probe", broker=stack.broker_url)
        self.client.conf.broker_transport_options = {"max_retries": 1, "socket_connect_timeout": 1}

    def _publish(self, name: str, args: list, **options: object) -> None:
        # Redis may still be loading its AOF: keep trying, the clock runs.
        deadline = time.monotonic() + RESUME_WITHIN_SECONDS
        while True:
            try:
                self.client.send_task(name, args=args, retry=False, **options)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def time_to_resume(self, timeout: float) -> dict[str, float | None]:
        """Seconds until each queue's task was received and each worker answered a probe (None: not in time)."""
        started_at = time.monotonic()
        pending: dict[str, Callable[[], bool]] = {}
        for queue, (worker, name, args) in QUEUE_PROBES.items():
            task_id = f"restart-probe-{uuid.uuid4().hex}"
            self._publish(name, args, queue=queue, task_id=task_id)
            log = self.stack.workdir / f"{worker}.log"
            pending[queue] = lambda log=log, task_id=task_id: task_id in log.read_text(errors="replace")
        redis = Redis(port=self.stack.redis_port, socket_timeout=1)
        for worker, node in self.stack.nodes.items():
            token = uuid.uuid4().hex
            self._publish("parley.health.probe", [token], queue=worker_direct(node), expires=timeout)
            pending[f"{worker} probe"] = lambda token=token, redis=redis: bool(redis.delete(f"parley:probe:{token}"))
        seen: dict[str, float | None] = dict.fromkeys(pending)
        deadline = started_at + timeout
        while time.monotonic() < deadline and any(v is None for v in seen.values()):
            for what, arrived in pending.items():
                if seen[what] is None and arrived():
                    seen[what] = time.monotonic() - started_at
            time.sleep(0.05)
        redis.close()
        return seen


def kill_redis(stack: Stack, sig: signal.Signals) -> None:
    proc = stack.procs.pop("redis")
    os.killpg(proc.pid, sig)
    proc.wait()


def restart(stack: Stack, shape: str, senders: list[Sender]) -> None:
    """Stop and start the stack's Redis the way ``shape`` says."""
    if shape == "load":
        sender = Sender(stack)
        senders.append(sender)
        with sender:
            time.sleep(1)
            kill_redis(stack, signal.SIGKILL)
            stack.start_redis()
            time.sleep(1)
        return
    if shape == "mid-task":
        user = new_phone()
        assert stack.post(webhook([message(user, SLOW_TEXT)], [contact(user)])).status_code == 200
        mid = Sender(stack)
        mid.acknowledged.append(user)
        senders.append(mid)
        time.sleep(1)  # taken and stalled in the engine (after its commit)
    kill_redis(stack, signal.SIGKILL if shape in ("down 2 s", "double") else signal.SIGTERM)
    if shape == "down 2 s":
        time.sleep(2)
    if shape == "503 while down":
        user = new_phone()
        assert stack.post(webhook([message(user, "hi")], [contact(user)])).status_code == 503
    stack.start_redis()
    if shape == "double":
        for pause in (0.4, 0.8):
            time.sleep(pause)
            kill_redis(stack, signal.SIGKILL)
            stack.start_redis()


SHAPES = ("idle", "load", "mid-task", "down 2 s", "double", "503 while down")


def test_every_worker_consumes_after_each_redis_restart(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    prober = Prober(stack)
    assert all(v is not None for v in prober.time_to_resume(30).values()), "not consuming before the first restart"
    senders: list[Sender] = []
    resumed: list[float] = []
    stalls: list[str] = []
    lines = []
    for n in range(RESTARTS):
        shape = SHAPES[n % len(SHAPES)]
        restart(stack, shape, senders)
        seen = prober.time_to_resume(RESUME_WITHIN_SECONDS)
        late = [what for what, seconds in seen.items() if seconds is None]
        late += [f"{name} exited ({proc.returncode})" for name, proc in stack.procs.items() if proc.poll() is not None]
        if late:
            stalls.append(f"restart {n + 1} ({shape}): {', '.join(late)} not consuming")
        else:
            resumed.append(max(s for s in seen.values() if s is not None))
        lines.append(
            f"restart {n + 1:2d} {shape:15s} "
            + " ".join(f"{k}={v if v is None else round(v, 2)}" for k, v in seen.items())
        )
    users = [user for sender in senders for user in sender.acknowledged]
    unanswered = wait_answered(stack, users, 60)
    # Taken by a worker when Redis went, and not started: Celery drops such a task from
    # memory on reconnect and Redis hands it on after the visibility timeout (1 h). Late,
    # not lost: let that timeout pass now, and every one of them must be answered.
    parked = parked_in_unacked(stack, unanswered)
    if unanswered:
        restore_unacked(stack.broker_url)
    lost = wait_answered(stack, unanswered, 60)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
        if resumed:
            print(
                f"redis restarts: {RESTARTS}, stalls: {len(stalls)}, time to resume median "
                f"{statistics.median(resumed):.2f}s max {max(resumed):.2f}s; webhooks acknowledged {len(users)},"
                f" answered at once {len(users) - len(unanswered)}, held until the visibility timeout"
                f" {len(parked)}, lost {len(lost)}"
            )
    assert not stalls, stalls
    assert len(users) > RESTARTS // len(SHAPES) * 10, "the load barely posted: the test proves little"
    assert not lost, f"{len(lost)} acknowledged webhooks never answered ({len(parked)} had been held unacknowledged)"
    assert set(unanswered) == set(parked), "a webhook waited, unanswered, somewhere other than the unacked set"


def wait_answered(stack: Stack, users: list[str], timeout: float) -> list[str]:
    """The users still without a reply after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    waiting = list(users)
    while waiting and time.monotonic() < deadline:
        answered = {r.recipient.lstrip("+") for r in stack.stub.requests() if r.kind == "message"}
        waiting = [u for u in waiting if u not in answered]
        time.sleep(0.2)
    return waiting


def body(message: dict) -> str:
    return base64.b64decode(message["body"]).decode(errors="replace")


def parked_in_unacked(stack: Stack, users: list[str]) -> list[str]:
    """Those of ``users`` whose webhook a worker took and never acknowledged."""
    redis = Redis(port=stack.redis_port)
    try:
        unacked = [body(json.loads(v)[0]) for v in redis.hvals("unacked")]
    finally:
        redis.close()
    return [u for u in users if any(u in b for b in unacked)]
