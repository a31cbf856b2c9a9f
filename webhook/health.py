"""``/healthz`` (the process answers) and ``/readyz`` (broker and database reachable, queues consumed).

Readiness checks are callables that raise when their dependency is down. Tests (and
deployments with other needs) replace them through ``app.config["READINESS_CHECKS"]``.
Answers name the failed dependency and the error class, never a URL: broker and
database URLs may carry passwords.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, Response, current_app, jsonify

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

Check = Callable[[], object]
CHECK_TIMEOUT_SECONDS = 3.0


def check_broker() -> None:
    from worker.celery_app import app as celery

    with celery.connection_for_write() as conn:
        # One immediate retry, no back-off sleep: a probe must answer quickly.
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


class QueueStalled(RuntimeError):
    """A queue's oldest message has waited longer than ``PARLEY_QUEUE_STALL_SECONDS``."""


def check_queues() -> None:
    """Work moves: no message of inbound or outbound has waited too long (Redis broker only).

    A connected broker is not enough: workers can stay connected and take nothing, while
    this receiver goes on acknowledging webhooks.
    """
    from settings import get_settings
    from worker.celery_app import INBOUND_QUEUE, OUTBOUND_QUEUE
    from worker.celery_app import app as celery
    from worker.health import broker_client, oldest_waiting_seconds

    url = str(celery.conf.broker_url)
    if not url.startswith(("redis://", "rediss://")):
        return
    limit = get_settings().queue_stall_seconds
    client = broker_client(url)
    try:
        stalled = {
            q: age for q in (INBOUND_QUEUE, OUTBOUND_QUEUE) if (age := oldest_waiting_seconds(client, q)) > limit
        }
    finally:
        client.close()
    if stalled:
        log.warning("queue not consumed: %s", ", ".join(f"{q} oldest waiting {age:.0f}s" for q, age in stalled.items()))
        raise QueueStalled(", ".join(stalled))


def check_database() -> None:
    from sqlalchemy import text

    from conversation.db import get_engine

    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


DEFAULT_CHECKS: Mapping[str, Check] = {"broker": check_broker, "database": check_database, "queues": check_queues}


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    return jsonify(status="ok"), 200


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks: Mapping[str, Check] = current_app.config.get("READINESS_CHECKS") or DEFAULT_CHECKS
    results = run_checks(checks, CHECK_TIMEOUT_SECONDS)
    failed = {name: outcome for name, outcome in results.items() if outcome != "ok"}
    if failed:
        log.warning("not ready: %s", ", ".join(f"{name}={outcome}" for name, outcome in failed.items()))
        return jsonify(status="unavailable", checks=results), 503
    return jsonify(status="ready", checks=results), 200


def run_checks(checks: Mapping[str, Check], timeout: float) -> dict[str, str]:
    """Run the checks in parallel; each result is "ok", "timeout" or the error's class name.

    A socket connect to a black-holed host can block far longer than a probe may take, so
    the deadline is enforced here rather than trusted to each client library.
    """
    if not checks:
        return {}
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readyz")
    futures = {name: pool.submit(check) for name, check in checks.items()}
    results: dict[str, str] = {}
    try:
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                results[name] = "ok"
            except FutureTimeout:
                results[name] = "timeout"
            except Exception as exc:  # the dependency is down; which one matters, not why
                results[name] = f"failed: {exc.__class__.__name__}"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a stuck check must not hold the answer
    return results
