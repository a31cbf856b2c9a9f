"""Task names are a contract with queued messages and Beat's schedule: pinned here; and
the task base class (soft limits, transient retries) at work in a real worker."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import celery_beat
from conversation.db import make_engine
from tests.support.database import ADMIN_URL, drop_database, fresh_database, migrate
from tests.support.stack import ROOT, Stack, new_workdir, wait_until, worker_command
from tests.support.webhooks import contact, message, webhook
from tests.worker.dispatch_helpers import celery_pointer, private_redis
from worker.celery_app import INBOUND_QUEUE, MAINTENANCE_QUEUE, OUTBOUND_QUEUE, app
from worker.task_base import ParleyTask
from worker.tasks import process_payload

EXPECTED = {
    "parley.inbound.process_payload": INBOUND_QUEUE,
    "parley.outbox.deliver": OUTBOUND_QUEUE,
    "parley.maintenance.expire_conversations": MAINTENANCE_QUEUE,
    "parley.maintenance.sweep_outbox": MAINTENANCE_QUEUE,
    "parley.maintenance.prune_logs": MAINTENANCE_QUEUE,
    "parley.maintenance.send_reminders": MAINTENANCE_QUEUE,
    "parley.maintenance.release_handoffs": MAINTENANCE_QUEUE,
    "parley.events.deliver": OUTBOUND_QUEUE,
    # Sent to one worker's own queue (worker/health.py); the default route is never used.
    "parley.health.probe": INBOUND_QUEUE,
}


def test_task_names_and_queues_are_pinned() -> None:
    app.loader.import_default_modules()
    names = {n for n in app.tasks if n.startswith("parley.")}
    assert names == set(EXPECTED)
    for name, queue in EXPECTED.items():
        assert app.amqp.router.route({}, name)["queue"].name == queue


def test_every_task_has_soft_and_hard_time_limits_below_the_visibility_timeout() -> None:
    app.loader.import_default_modules()
    visibility = app.conf.broker_transport_options.get("visibility_timeout", 3600)
    for name in EXPECTED:
        task = app.tasks[name]
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        hard = task.time_limit or app.conf.task_time_limit
        assert soft < hard < visibility, name


def test_every_task_has_the_base_class_and_its_own_retry_policy() -> None:
    app.loader.import_default_modules()
    for name in EXPECTED:
        assert isinstance(app.tasks[name], ParleyTask), name
    payload, deliver = app.tasks["parley.inbound.process_payload"], app.tasks["parley.outbox.deliver"]
    assert [payload.transient_countdown(n) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    assert [deliver.transient_countdown(n) for n in range(3)] == [5, 5, 5]
    assert (payload.soft_limit_countdown, deliver.soft_limit_countdown) == (5, 1)
    assert payload.acks_late and deliver.acks_late
    assert (payload.max_retries, deliver.max_retries) == (20, None)
    # Beat runs maintenance again on schedule: past the soft limit it stops, no retry.
    assert all(app.tasks[n].soft_limit_countdown is None for n in EXPECTED if "maintenance" in n)


def test_safe_delivery_settings() -> None:
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1


def test_beat_schedules_every_maintenance_job() -> None:
    scheduled = {entry["task"] for entry in celery_beat.app.conf.beat_schedule.values()}
    assert scheduled == {n for n in EXPECTED if n.startswith("parley.maintenance.")}


# --- the task base class, in a real worker ---------------------------------------------------
#
# A real ``celery -A worker worker`` on a private redis-server: retries are new messages
# published by the worker itself, so only a worker shows the whole round trip.


@pytest.fixture(scope="module")
def broker() -> Iterator[Stack]:
    with private_redis() as stack:
        yield stack


@pytest.fixture
def queue(broker: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """The Celery app of this process on the private broker, its queues empty."""
    with celery_pointer(monkeypatch) as point:
        point(broker.broker_url)
        client = redis.Redis.from_url(broker.broker_url, socket_timeout=5)
        client.flushall()
        yield client
        client.close()


@contextmanager
def worker(broker: Stack, **env: str) -> Iterator[Path]:
    """One prefork worker process on the inbound queue; yields its log file."""
    workdir = new_workdir()
    log_path = workdir / "worker.log"
    full_env = {**broker.env(), "PARLEY_WORKER_METRICS_PORT": "0", **env}
    command = worker_command(f"tasks-{uuid.uuid4().hex[:6]}@%h", ("-c", "1", "-Q", INBOUND_QUEUE))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield log_path
    except BaseException:
        print(log_path.read_text(errors="replace")[-4000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_events(log_path: Path) -> list[str]:
    """The ``event`` of each of parley's JSON log lines (Celery's own lines are text)."""
    events = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            events.append(json.loads(line).get("event", ""))
    return events


def one_message(text: str) -> tuple[str, str]:
    wamid = f"wamid.TASKS{uuid.uuid4().hex}"
    return wamid, json.dumps(webhook([message("15550007777", text, wamid=wamid)], [contact("15550007777")]))


def outcomes(db_url: str, wamid: str) -> list[str]:
    """The outcome of each inbound row of ``wamid``; with no flows loaded a handled message is a "fallback"."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT outcome FROM inbound_messages WHERE wamid = :w"), {"w": wamid})
            return [row.outcome for row in rows]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_database_outage_is_retried_until_the_database_is_back(broker: Stack, queue: redis.Redis) -> None:
    """The database does not exist yet: the task retries (transient) and handles the
    message once it does, with nothing dead-lettered."""
    db_url = make_url(ADMIN_URL).set(database=f"parley_test_{uuid.uuid4().hex[:10]}")
    url = db_url.render_as_string(hide_password=False)
    staging = db_url.set(database=f"{db_url.database}_new")
    wamid, raw = one_message("hi")
    process_payload.apply_async(args=[raw])
    try:
        with worker(broker, DATABASE_URL=url) as log_path:
            retried = "database unavailable, task retried"
            wait_until(lambda: retried in log_events(log_path), 60, "the task to retry the outage")
            # The database appears migrated in one step (built under another name, then
            # renamed): a retry that found it half-migrated would fail for good, not retry.
            admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{staging.database}"'))
            migrate(staging.render_as_string(hide_password=False))
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{staging.database}" RENAME TO "{db_url.database}"'))
            admin.dispose()
            wait_until(lambda: outcomes(url, wamid) == ["fallback"], 60, "the retried task to handle the message")
            wait_until(lambda: queue.llen(INBOUND_QUEUE) == 0 and queue.hlen("unacked") == 0, 15, "acks")
            assert "inbound message failed" not in log_events(log_path)
    finally:
        drop_database(url)
        drop_database(staging.render_as_string(hide_password=False))


@pytest.mark.postgres
def test_a_task_past_its_soft_limit_is_retried_and_keeps_what_it_committed(broker: Stack, queue: redis.Redis) -> None:
    """Each run stalls after its commit past a 2 s soft limit (set on the message): the
    base class retries it, the retry finds the message a duplicate, the process lives on."""
    wamid, raw = one_message("slow please")
    stall = {"PARLEY_FAULT_POINT": "after_commit", "PARLEY_FAULT_ACTION": "sleep:5", "PARLEY_FAULT_MATCH": "slow"}
    with fresh_database() as db_url, worker(broker, DATABASE_URL=db_url, **stall) as log_path:
        process_payload.apply_async(args=[raw], soft_time_limit=2, time_limit=30)
        soft = "task retried after its soft time limit"
        wait_until(lambda: log_events(log_path).count(soft) >= 2, 60, "two runs to reach the soft limit")
        assert outcomes(db_url, wamid) == ["fallback"]  # committed by the first run, not again
        logged = log_path.read_text(errors="replace")
        assert "Hard time limit" not in logged and "WorkerLostError" not in logged
