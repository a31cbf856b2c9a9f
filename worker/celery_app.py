"""The one Celery app. Configuration lives here; tasks live in ``tasks.py``.

Queues: ``inbound`` (webhook payloads → engine) and ``outbound`` (outbox → Graph API) are
separate so a slow Graph API never delays inbound work; ``maintenance`` carries Beat's jobs.
"""

from __future__ import annotations

import time

from celery import Celery
from celery.signals import beat_init, before_task_publish, setup_logging, worker_init, worker_process_init
from kombu import Queue

from settings import SettingsError, get_settings
from worker import metrics

INBOUND_QUEUE = "inbound"
OUTBOUND_QUEUE = "outbound"
MAINTENANCE_QUEUE = "maintenance"

# Longest task hard limit (seconds). The Redis visibility timeout must exceed it, or
# Redis would hand a still-running task to a second worker.
LONGEST_TASK_SECONDS = 300
VISIBILITY_TIMEOUT_SECONDS = 3600
# The Unix time a message was published, in its headers (Celery's message carries none).
PUBLISHED_HEADER = "parley_published_at"


def transport_options(broker_url: str) -> dict[str, object]:
    """Redis options; the embedded SQLite broker takes none (kombu passes them to create_engine)."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return {}
    return {
        "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
        # A webhook request must fail fast to 503 when the broker is down, not hang:
        # publishing retries once, and a black-holed broker host times out in 2 s.
        # (The worker's own reconnect loop uses broker_connection_max_retries.)
        "socket_connect_timeout": 2,
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    }


def create_celery() -> Celery:
    try:
        settings = get_settings()
    except SettingsError as exc:  # one line for the operator, not a traceback (worker/guards.py)
        raise SystemExit(f"parley: {exc}") from None
    app = Celery("parley", broker=settings.broker_url, include=["worker.tasks", "worker.health"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=INBOUND_QUEUE,
        # Each worker also consumes <node name>.dq2: the health probe (worker/health.py)
        # goes through the same channel as its tasks, so it fails when they stop moving.
        worker_direct=True,
        task_queues=(Queue(INBOUND_QUEUE), Queue(OUTBOUND_QUEUE), Queue(MAINTENANCE_QUEUE)),
        task_routes={
            "parley.inbound.*": {"queue": INBOUND_QUEUE},
            "parley.outbox.*": {"queue": OUTBOUND_QUEUE},
            # Posting events is I/O like sending; it never takes an inbound worker from a customer.
            "parley.events.*": {"queue": OUTBOUND_QUEUE},
            "parley.maintenance.*": {"queue": MAINTENANCE_QUEUE},
        },
        task_soft_time_limit=LONGEST_TASK_SECONDS - 30,
        task_time_limit=LONGEST_TASK_SECONDS,
        broker_transport_options=transport_options(settings.broker_url),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
    )
    metrics.connect_signals()
    return app


@setup_logging.connect
def _configure_logging(loglevel: int | None = None, **_: object) -> None:
    # Connected, this signal stops Celery from configuring logging itself: workers and
    # Beat log like the receiver (conversation/logs.py), at the level of --loglevel.
    from conversation.logs import configure_logging

    configure_logging(get_settings(), level=loglevel or None)


@before_task_publish.connect
def _stamp_published_at(headers: dict | None = None, **_: object) -> None:
    # How long the oldest message of a queue has waited (worker/health.py) needs its
    # publish time; Celery's message carries none. A retry is a new message: new stamp.
    if headers is not None:
        headers[PUBLISHED_HEADER] = time.time()


@worker_init.connect
@beat_init.connect
def _refuse_unsafe_start(**_: object) -> None:
    # An evicting broker, a visibility timeout a task can outlive, fault injection in
    # production: print one line and exit rather than lose or repeat messages.
    from worker.guards import enforce

    enforce(app)


@worker_init.connect
@worker_process_init.connect
def configure_worker_connections(**_: object) -> None:
    # A forked child must not reuse the parent's pooled database connections (the engine
    # is rebuilt). No ping per checkout: that is a round trip per transaction, three per
    # message. After a Postgres restart the first statement on a dead connection fails as
    # transient instead, the pool is invalidated and the task or the sender retries.
    from conversation.db import use_engine_options

    use_engine_options(pool_pre_ping=False)


app = create_celery()
