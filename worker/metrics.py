"""The workers' Prometheus metrics, and one small HTTP exporter per Celery worker.

Celery's prefork pool runs tasks in child processes, so the metrics use Prometheus'
multiprocess mode: on ``celeryd_init`` the worker's main process points
``PROMETHEUS_MULTIPROC_DIR`` at ``{PARLEY_METRICS_DIR}/worker-{node name}`` (emptied),
before any pool child is forked; on ``worker_ready`` it serves every child's samples on
``PARLEY_WORKER_METRICS_ADDR:PARLEY_WORKER_METRICS_PORT`` (default 127.0.0.1:9808, 0 for
none), with the queue depth read from Redis on each scrape.

``prometheus_client`` picks single- or multi-process mode when it is first imported, and
children inherit the parent's modules. So nothing here imports it at module level: the
metrics are built on first use (``WORKER_METRICS``), after the directory is set. The receiver
imports this module too (through ``worker.celery_app``) and never touches them.

Names and meanings: docs/METRICS.md.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from celery.signals import (
    celeryd_init,
    task_postrun,
    task_prerun,
    task_retry,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from conversation.logs import clear_context
from settings import get_settings
from worker.queue_depth import QueueDepthCollector

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Meta's message types; anything else is counted as "other" so labels stay few.
MESSAGE_TYPES = frozenset(
    {
        "text", "interactive", "button", "image", "audio", "video", "document", "sticker", "location",
        "contacts", "reaction", "order", "system", "request_welcome", "unsupported", "status", "unknown",
        "edit", "revoke",
    }
)  # fmt: skip
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LAG_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)


class _Metrics:
    """Every worker-side metric; built once per process, on first use."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # as the receiver: *_created exists only outside multiprocess mode
        self.inbound_items: Counter = Counter(
            "parley_inbound_items",
            "Webhook items taken from the inbound queue, by message type and outcome "
            "(handled, duplicate, failed, skipped = malformed).",
            ["type", "outcome"],
        )
        self.engine_outcomes: Counter = Counter(
            "parley_engine_outcomes",
            "What the engine did with a handled message (started, advanced, invalid, completed, cancelled, ...), "
            "plus conversations removed by the expiry job (expired).",
            ["outcome"],
        )
        self.statuses: Counter = Counter(
            "parley_delivery_statuses",
            "Delivery receipts (sent, delivered, read, failed) and what became of them "
            "(applied, stale, unknown, ignored); error_code for failed receipts.",
            ["status", "result", "error_code"],
        )
        self.sends: Counter = Counter(
            "parley_outbound_sends",
            "Graph API calls for outbox rows by kind (message, mark_read), status "
            "(accepted, retry, failed), Graph error code and disposition.",
            ["kind", "status", "code", "reason"],
        )
        self.task_retries: Counter = Counter("parley_task_retries", "Celery task retries, by task.", ["task"])
        self.task_seconds: Histogram = Histogram(
            "parley_task_duration_seconds",
            "Celery task run time, by task and final state (SUCCESS, RETRY, FAILURE).",
            ["task", "state"],
            buckets=TASK_BUCKETS,
        )
        self.reply_seconds: Histogram = Histogram(
            "parley_reply_latency_seconds",
            "From the worker taking a customer's message in to Graph accepting a reply to it.",
            buckets=LATENCY_BUCKETS,
        )
        self.inbound_lag: Histogram = Histogram(
            "parley_inbound_lag_seconds",
            "From the customer sending (Meta's timestamp, 1 s resolution) to the worker taking the message in.",
            buckets=LAG_BUCKETS,
        )


T = TypeVar("T")


class BuiltOnce(Generic[T]):
    """``get()`` builds the value on first use and returns that one ever after, also when
    several threads ask at once."""

    def __init__(self, build: Callable[[], T]) -> None:
        self.build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self.build()
        return self._value


# Built once per process under a lock: a threads pool's first tasks arrive together,
# and a second registration raises DuplicateTimeseries (inside a send Graph accepted).
WORKER_METRICS = BuiltOnce(_Metrics)
_metrics = WORKER_METRICS.get


def _type(message_type: str) -> str:
    return message_type if message_type in MESSAGE_TYPES else "other"


# --- what the code counts -----------------------------------------------------------


def count_inbound(message_type: str, outcome: str, n: int = 1) -> None:
    """An inbound item: ``outcome`` is handled, duplicate, failed or skipped."""
    if n:
        _metrics().inbound_items.labels(_type(message_type), outcome).inc(n)


def message_handled(message_type: str, outcome: str, sent_at: datetime | None) -> None:
    """A message the engine handled: the item, the engine's outcome and the inbound lag."""
    m = _metrics()
    m.inbound_items.labels(_type(message_type), "handled").inc()
    m.engine_outcomes.labels(outcome).inc()
    if sent_at is not None:
        m.inbound_lag.observe(max((datetime.now(UTC) - sent_at).total_seconds(), 0.0))


def count_engine_outcome(outcome: str, n: int = 1) -> None:
    if n:
        _metrics().engine_outcomes.labels(outcome).inc(n)


def count_status(status: str, result: str, error_code: int | None) -> None:
    _metrics().statuses.labels(status, result, "" if error_code is None else str(error_code)).inc()


def send_accepted(kind: str, created_at: datetime | None) -> None:
    """Graph accepted an outbox row; a reply's latency is measured from its row's creation."""
    m = _metrics()
    m.sends.labels(kind, "accepted", "", "").inc()
    if kind == "message" and created_at is not None:
        m.reply_seconds.observe(max((datetime.now(UTC) - created_at).total_seconds(), 0.0))


def send_refused(kind: str, final: bool, code: int | None, disposition: str) -> None:
    """Graph refused an outbox row: ``final`` (failed for good) or to be retried."""
    code_label = "none" if code is None else str(code)
    _metrics().sends.labels(kind, "failed" if final else "retry", code_label, disposition).inc()


# --- multiprocess directory and exporter --------------------------------------------


def prepare_multiprocess_dir(path: Path) -> bool:
    """Make ``path`` an empty directory and point prometheus_client at it (before it is imported)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink()
    except OSError as exc:
        log.warning("metrics directory unusable, metrics stay per process: %s", exc.__class__.__name__)
        return False
    os.environ[MULTIPROC_ENV] = str(path)
    return True


def node_dir(root: Path, nodename: str) -> Path:
    return root / ("worker-" + re.sub(r"[^A-Za-z0-9_.-]", "_", nodename))


_exporter: dict[str, Any] = {}


def _registry(broker_url: str, queues: Iterable[str]) -> Any:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    path = os.environ.get(MULTIPROC_ENV)
    if path and os.path.isdir(path):
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
    else:
        registry = REGISTRY
    if broker_url.startswith(("redis://", "rediss://")):
        registry.register(QueueDepthCollector(broker_url, tuple(queues)))
    return registry


def start_exporter(port: int, addr: str, broker_url: str, queues: Iterable[str]) -> bool:
    """Serve the metrics on ``addr:port`` from a daemon thread; False if it cannot listen."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=addr, registry=_registry(broker_url, queues))
    except OSError as exc:
        # Another worker on this host holds the port: this one runs on, unscraped.
        log.warning(
            "worker metrics not served: %s:%d is taken (%s); give each worker on this host its own"
            " PARLEY_WORKER_METRICS_PORT, or 0 for none",
            addr,
            port,
            exc.__class__.__name__,
        )
        return False
    _exporter["server"] = server
    log.info("worker metrics served", extra={"addr": addr, "port": port})
    return True


# --- Celery signals -----------------------------------------------------------------

_started: dict[str, float] = {}


def _on_celeryd_init(sender: str | None = None, **_: object) -> None:
    # Main worker process, before the pool forks: children inherit the directory.
    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROC_ENV):
        log.warning("prometheus_client was imported before the metrics directory was set; metrics are per process")
    prepare_multiprocess_dir(node_dir(get_settings().metrics_dir, sender or "celery"))


def _on_worker_ready(sender: Any = None, **_: object) -> None:
    settings = get_settings()
    if settings.worker_metrics_port == 0:
        return
    app = sender.app if sender is not None else None
    queues = [q.name for q in (app.conf.task_queues or ())] if app is not None else []
    broker_url = str(app.conf.broker_url) if app is not None else settings.broker_url
    start_exporter(settings.worker_metrics_port, settings.worker_metrics_addr, broker_url, queues)


def _on_worker_shutdown(**_: object) -> None:
    server = _exporter.pop("server", None)
    if server is not None:
        server.shutdown()


def _on_process_shutdown(pid: int | None = None, **_: object) -> None:
    # A pool child exits: drop its live gauges (counters and histograms stay summed).
    if os.environ.get(MULTIPROC_ENV) and "prometheus_client" in sys.modules:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def _on_task_prerun(task_id: str | None = None, **_: object) -> None:
    clear_context()  # a previous task's correlation id must not leak into this one
    if task_id is not None:
        _started[task_id] = time.perf_counter()


def _on_task_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: object) -> None:
    clear_context()
    started = _started.pop(task_id, None) if task_id is not None else None
    if started is not None and task is not None:
        _metrics().task_seconds.labels(task.name, state or "UNKNOWN").observe(time.perf_counter() - started)


def _on_task_retry(sender: Any = None, **_: object) -> None:
    if sender is not None:
        _metrics().task_retries.labels(sender.name).inc()


def connect_signals() -> None:
    """Hook the metrics into Celery's signals (idempotent; called by ``create_celery``)."""
    celeryd_init.connect(_on_celeryd_init, weak=False, dispatch_uid="parley.metrics.celeryd_init")
    worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="parley.metrics.worker_ready")
    worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid="parley.metrics.worker_shutdown")
    worker_process_shutdown.connect(_on_process_shutdown, weak=False, dispatch_uid="parley.metrics.process_shutdown")
    task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="parley.metrics.task_prerun")
    task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="parley.metrics.task_postrun")
    task_retry.connect(_on_task_retry, weak=False, dispatch_uid="parley.metrics.task_retry")
