"""Task names are a contract with queued messages and Beat's schedule: pinned here."""

from __future__ import annotations

import celery_beat
from worker.celery_app import INBOUND_QUEUE, MAINTENANCE_QUEUE, OUTBOUND_QUEUE, app

EXPECTED = {
    "parley.inbound.process_payload": INBOUND_QUEUE,
    "parley.outbox.deliver": OUTBOUND_QUEUE,
    "parley.maintenance.expire_conversations": MAINTENANCE_QUEUE,
    "parley.maintenance.sweep_outbox": MAINTENANCE_QUEUE,
    "parley.maintenance.prune_logs": MAINTENANCE_QUEUE,
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


def test_safe_delivery_settings() -> None:
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1


def test_beat_schedules_every_maintenance_job() -> None:
    scheduled = {entry["task"] for entry in celery_beat.app.conf.beat_schedule.values()}
    assert scheduled == {n for n in EXPECTED if n.startswith("parley.maintenance.")}
