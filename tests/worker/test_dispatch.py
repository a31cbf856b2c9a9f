"""worker/dispatch.py against real brokers: what the receiver puts in Redis, and when it refuses.

Each test module gets a private redis-server (as the e2e stack does), so stopping it, or
a real Celery worker consuming from it, never touches the machine's Redis or another
test session's queue. The one Celery app is pointed at it for the module and restored.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import text

from conversation.db import make_engine
from tests.support.database import fresh_database
from tests.support.stack import BIN, ROOT, Stack, new_workdir, wait_until
from tests.support.webhooks import contact, message, webhook
from tests.worker.dispatch_helpers import celery_pointer, private_redis, queued_messages, task_args
from worker import dispatch
from worker.celery_app import INBOUND_QUEUE, PUBLISHED_HEADER
from worker.dispatch import QueueUnavailable, enqueue_payload

pytestmark = [pytest.mark.redis]


def raw_webhook(wamid: str | None = None, user: str = "15550009999") -> str:
    return json.dumps(
        webhook([message(user, "hi", wamid=wamid or f"wamid.DISPATCH{uuid.uuid4().hex}")], [contact(user)])
    )


@pytest.fixture
def point_celery_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with celery_pointer(monkeypatch) as point:
        yield point


@pytest.fixture(scope="module")
def broker() -> Iterator[Stack]:
    with private_redis() as stack:
        yield stack


@pytest.fixture
def queue(broker: Stack, point_celery_at: Any) -> Iterator[redis.Redis]:
    """The Celery app on the private Redis, its queues empty; a client to look inside."""
    if not broker.redis_up():
        broker.start_redis()
    point_celery_at(broker.broker_url)
    client = redis.Redis.from_url(broker.broker_url, socket_timeout=5)
    client.flushall()
    yield client
    client.close()


# --- the message is Celery's own ------------------------------------------------------------


def test_redis_broker_uses_the_kept_connections_publisher(queue: redis.Redis) -> None:
    enqueue_payload(raw_webhook())
    assert isinstance(dispatch.publisher(), dispatch.RedisPublisher)
    assert queue.llen(INBOUND_QUEUE) == 1


def test_message_is_what_apply_async_sends(queue: redis.Redis) -> None:
    """Same keys, headers and properties as Celery's ordinary publish, ids and body aside.

    Published by name, the message carries no time limits of its own; the worker then
    applies the task's (``timelimit`` None falls back to the task's soft and hard limits)."""
    from worker.tasks import process_payload

    raw = raw_webhook()
    enqueue_payload(raw)
    process_payload.apply_async(args=[raw], retry=False)
    ours, celerys = queued_messages(queue)
    assert task_args(ours) == task_args(celerys) == [raw]
    for envelope in (ours, celerys):
        for key in ("id", "root_id", PUBLISHED_HEADER):  # the publish time differs too
            envelope["headers"].pop(key)
        envelope["properties"].pop("correlation_id")
        envelope["properties"].pop("delivery_tag")
        envelope.pop("body")
    assert ours["headers"].pop("timelimit") == [None, None]
    celerys["headers"].pop("timelimit")
    assert ours == celerys
    assert ours["headers"]["task"] == "parley.inbound.process_payload"
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": INBOUND_QUEUE}
    assert ours["properties"]["delivery_mode"] == 2  # persistent, as Celery's default


def test_many_threads_each_queued_exactly_once(queue: redis.Redis) -> None:
    bodies = [raw_webhook() for _ in range(400)]
    errors: list[BaseException] = []
    start = threading.Barrier(40)

    def post(chunk: list[str]) -> None:
        start.wait()
        for raw in chunk:
            try:
                enqueue_payload(raw)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=post, args=(bodies[i::40],)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    queued = [task_args(m)[0] for m in queued_messages(queue)]
    assert sorted(queued) == sorted(bodies)  # every one, once
    ids = {m["headers"]["id"] for m in queued_messages(queue)}
    assert len(ids) == len(bodies)
    opened = dispatch.publisher().opened  # type: ignore[attr-defined]
    assert 1 <= opened <= 40, "connections are kept: at most one per thread publishing at once"


def test_one_thread_keeps_its_order(queue: redis.Redis) -> None:
    bodies = [raw_webhook() for _ in range(20)]
    for raw in bodies:
        enqueue_payload(raw)
    assert [task_args(m)[0] for m in queued_messages(queue)] == bodies


# --- refusals: fast 503s, never a silent loss --------------------------------------------------


def test_stopped_redis_refuses_fast_then_recovers(broker: Stack, queue: redis.Redis) -> None:
    enqueue_payload(raw_webhook())  # connected, pooled
    broker.stop_redis()
    try:
        started = time.monotonic()
        with pytest.raises(QueueUnavailable):
            enqueue_payload(raw_webhook())
        assert time.monotonic() - started < 2.5
    finally:
        broker.start_redis()
    raw = raw_webhook()
    enqueue_payload(raw)  # the pool reconnects by itself
    assert [task_args(m)[0] for m in queued_messages(queue)] == [raw]


def test_redis_refusing_writes_is_unavailable(queue: redis.Redis) -> None:
    queue.config_set("maxmemory", "1")  # noeviction: every write is refused ("OOM")
    try:
        with pytest.raises(QueueUnavailable):
            enqueue_payload(raw_webhook())
    finally:
        queue.config_set("maxmemory", "0")
    assert queue.llen(INBOUND_QUEUE) == 0


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_black_holed_broker_answers_within_the_timeout(black_hole: int, point_celery_at: Any) -> None:
    point_celery_at(f"redis://127.0.0.1:{black_hole}/0")
    for _ in range(2):  # the first request connects; the next finds no connection either
        started = time.monotonic()
        with pytest.raises(QueueUnavailable):
            enqueue_payload(raw_webhook())
        assert time.monotonic() - started < dispatch.PUBLISH_TIMEOUT_SECONDS + 1.0


def test_broker_going_silent_mid_run_answers_within_the_timeout(queue: redis.Redis) -> None:
    enqueue_payload(raw_webhook())
    queue.execute_command("CLIENT", "PAUSE", "4000", "WRITE")  # Redis holds write commands unanswered
    started = time.monotonic()
    with pytest.raises(QueueUnavailable):
        enqueue_payload(raw_webhook())
    assert time.monotonic() - started < dispatch.PUBLISH_TIMEOUT_SECONDS + 1.0
    queue.execute_command("CLIENT", "UNPAUSE")


def test_refused_connection_is_unavailable(point_celery_at: Any) -> None:
    point_celery_at("redis://127.0.0.1:1/0")
    started = time.monotonic()
    with pytest.raises(QueueUnavailable):
        enqueue_payload(raw_webhook())
    assert time.monotonic() - started < dispatch.PUBLISH_TIMEOUT_SECONDS + 1.0


# --- the embedded broker (make run with no environment) ------------------------------------------


def test_embedded_sqlite_broker_takes_celerys_ordinary_path(tmp_path: Path, point_celery_at: Any) -> None:
    from kombu import Connection

    url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    point_celery_at(url)
    raw = raw_webhook()
    enqueue_payload(raw)
    assert isinstance(dispatch.publisher(), dispatch.CeleryPublisher)
    with Connection(url) as conn:
        got = conn.SimpleQueue(INBOUND_QUEUE).get(timeout=5)
        assert got.headers["task"] == "parley.inbound.process_payload"
        assert got.decode()[0] == [raw]
        got.ack()


# --- a real worker consumes what the receiver queued -------------------------------------------


@pytest.mark.postgres
def test_a_real_celery_worker_processes_what_was_queued(broker: Stack, queue: redis.Redis) -> None:
    """``celery -A worker worker``, unchanged, takes the message and handles it (acks_late)."""
    wamids = [f"wamid.DISPATCHWORKER{uuid.uuid4().hex}" for _ in range(3)]
    with fresh_database() as db_url:
        for wamid in wamids:
            enqueue_payload(raw_webhook(wamid))
        env = {**broker.env(), "DATABASE_URL": db_url, "WHATSAPP_API_URL": "http://127.0.0.1:9/v25.0"}
        env["PARLEY_WORKER_METRICS_PORT"] = "0"
        workdir = new_workdir()
        log = open(workdir / "worker.log", "ab")  # noqa: SIM115 - closed below
        worker = subprocess.Popen(
            [str(BIN / "celery"), "-A", "worker", "worker", "-Q", INBOUND_QUEUE, "-c", "1", "--without-gossip",
             "--without-mingle", "-n", f"dispatch-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        engine = make_engine(db_url)
        try:

            def handled() -> bool:
                with engine.connect() as conn:
                    found = conn.execute(
                        text("SELECT count(*) FROM inbound_messages WHERE wamid = ANY(:w)"), {"w": wamids}
                    ).scalar_one()
                return found == len(wamids)

            try:
                wait_until(handled, 60, "the worker to record every queued message")
            except AssertionError:
                print((workdir / "worker.log").read_text(errors="replace")[-4000:])
                raise
            # Acknowledged (acks_late: only after the task ran): nothing left queued or unacked.
            wait_until(lambda: queue.llen(INBOUND_QUEUE) == 0 and queue.hlen("unacked") == 0, 15, "acks")
        finally:
            engine.dispose()
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            log.close()
