"""The receiver's Prometheus metrics and its ``/metrics`` page.

Under ``gunicorn -c gunicorn.conf.py`` every gunicorn worker writes its samples
to the multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``, set by the master before
forking) and ``/metrics`` answers for all of them together. Under the plain
``gunicorn "webhook:create_app()"`` that variable is unset and each worker process keeps
its own registry: ``/metrics`` then shows the one process that answered the scrape.

The queue depth is read from Redis on each scrape (see ``worker.metrics``), the customers
waiting for a person from the database (``handoff_metrics``). Names and meanings:
docs/METRICS.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.orm import Session

REJECT_REASONS = (
    "too_large",
    "missing_signature",
    "bad_signature",
    "not_json",
    "ignored_object",
    "queue_unavailable",
)
RECEIVE_ENDPOINT = "receiver.receive"

# ``*_created`` series only exist outside multiprocess mode; leave them out everywhere.
disable_created_metrics()

WEBHOOKS_RECEIVED = Counter("parley_webhooks_received", "Webhook POSTs that reached /webhook.")
WEBHOOKS_QUEUED = Counter("parley_webhooks_queued", "Webhook POSTs put on the inbound queue (answered 200).")
WEBHOOKS_REJECTED = Counter(
    "parley_webhooks_rejected",
    "Webhook POSTs not queued, by reason (ignored_object is answered 200, the others 4xx/503).",
    ["reason"],
)
WEBHOOK_SECONDS = Histogram(
    "parley_webhook_request_duration_seconds",
    "Time to answer a webhook POST: read, verify, parse, enqueue.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
for _reason in REJECT_REASONS:
    WEBHOOKS_REJECTED.labels(_reason)  # every series exists from the start, at 0


def received() -> None:
    WEBHOOKS_RECEIVED.inc()


def queued() -> None:
    WEBHOOKS_QUEUED.inc()


def rejected(reason: str) -> None:
    """Count a webhook not queued; ``reason`` is one of REJECT_REASONS."""
    WEBHOOKS_REJECTED.labels(reason).inc()


def multiprocess_dir() -> str | None:
    """The multiprocess directory when this process runs in Prometheus multiprocess mode."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


def exposition(broker_url: str, scope: Callable[[], AbstractContextManager[Session]] | None = None) -> bytes:
    """The page ``/metrics`` serves: every process's samples, the queue depth, and with
    ``scope`` (a unit of work) what is read from the database (customers waiting for a person)."""
    path = multiprocess_dir()
    if path is None:
        registry: CollectorRegistry = REGISTRY
    else:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
    pages = [generate_latest(registry)]
    if broker_url.startswith(("redis://", "rediss://")):
        # Imported here: worker.celery_app builds the Celery app, needed only with Redis.
        from worker.celery_app import INBOUND_QUEUE, MAINTENANCE_QUEUE, OUTBOUND_QUEUE
        from worker.queue_depth import QueueDepthCollector

        queues = CollectorRegistry(auto_describe=False)
        queues.register(QueueDepthCollector(broker_url, (INBOUND_QUEUE, OUTBOUND_QUEUE, MAINTENANCE_QUEUE)))
        pages.append(generate_latest(queues))
    if scope is not None:
        from webhook.handoff_metrics import HandoffCollector

        handoffs = CollectorRegistry(auto_describe=False)
        handoffs.register(HandoffCollector(scope))
        pages.append(generate_latest(handoffs))
    return b"".join(pages)


def metrics_view() -> Response:
    settings = current_app.config["PARLEY_SETTINGS"]
    scope = None
    # The handoff gauges come with the agents' API: a receiver-only process (production
    # without PARLEY_ADMIN_TOKEN) loads no domain module, so it serves none of them.
    if settings.admin_token:
        from conversation.db import session_scope

        scope = current_app.config.get("SESSION_SCOPE", session_scope)
    page = exposition(settings.broker_url, scope)
    return Response(page, status=200, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def _start_timer() -> None:
    if request.endpoint == RECEIVE_ENDPOINT:
        g.webhook_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("webhook_started", None)
    if started is not None:
        WEBHOOK_SECONDS.observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    """Serve ``/metrics`` and time ``/webhook`` POSTs."""
    app.add_url_rule("/metrics", endpoint="metrics", view_func=metrics_view, methods=["GET"])
    app.before_request(_start_timer)
    app.after_request(_observe)
