"""Celery tasks: thin envelopes (names, queues, retries, limits) over plain functions."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import lru_cache

from celery.exceptions import SoftTimeLimitExceeded

from conversation import outbox
from conversation.db import session_scope
from conversation.models import utcnow
from conversation.service import ConversationService
from settings import get_settings
from worker import metrics
from worker.celery_app import app
from worker.graph_api import GraphClient
from worker.inbound import is_transient, process_raw
from worker.sender import drain

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def graph_client() -> GraphClient:
    """One client (one connection pool) per worker process."""
    return GraphClient.from_settings(get_settings())


def hand_off(user_key: str) -> None:
    """Ask a sender to drain this customer's outbox. The rows are already committed, so
    if the broker refuses, Beat's outbox sweep hands them on instead: never fail the
    payload (and its remaining messages) over it."""
    try:
        deliver.apply_async(args=[user_key])
    except Exception as exc:
        log.warning("hand-off deferred to the outbox sweep: %s", exc.__class__.__name__)


@app.task(
    name="parley.inbound.process_payload",
    bind=True,
    acks_late=True,
    max_retries=20,
    soft_time_limit=120,
    time_limit=150,
)
def process_payload(self, raw: str) -> dict[str, int]:
    """Every message and status of one webhook POST. Idempotent: wamids dedupe redeliveries."""
    try:
        report = process_raw(raw, get_settings(), hand_off)
    except SoftTimeLimitExceeded:
        # Items handled so far are committed; a retry skips them as duplicates.
        raise self.retry(countdown=5) from None
    except Exception as exc:
        if is_transient(exc):
            raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 60)) from exc
        raise
    return {"handled": report.handled, "duplicates": report.duplicates, "failed": report.failed}


@app.task(
    name="parley.outbox.deliver",
    bind=True,
    acks_late=True,
    max_retries=None,
    soft_time_limit=240,
    time_limit=270,
)
def deliver(self, user_key: str) -> dict[str, int]:
    """Send one customer's pending replies in order. Safe to run twice: a lease serializes it."""
    settings = get_settings()
    try:
        result = drain(user_key, graph_client(), settings.send_max_attempts)
    except SoftTimeLimitExceeded:
        raise self.retry(countdown=1) from None
    except Exception as exc:
        if is_transient(exc):
            raise self.retry(exc=exc, countdown=5) from exc
        raise
    if result.retry_in is not None:
        deliver.apply_async(args=[user_key], countdown=result.retry_in)
    return {"sent": result.sent, "failed": result.failed}


@app.task(name="parley.maintenance.expire_conversations", soft_time_limit=240, time_limit=270)
def expire_conversations() -> int:
    with session_scope() as session:
        removed = ConversationService(session).cleanup_expired_conversations()
    if removed:
        metrics.count_engine_outcome("expired", removed)
        log.info("expired conversations removed", extra={"count": removed})
    return removed


@app.task(name="parley.maintenance.sweep_outbox", soft_time_limit=240, time_limit=270)
def sweep_outbox() -> int:
    settings = get_settings()
    with session_scope() as session:
        users = outbox.users_to_sweep(session, utcnow(), timedelta(seconds=settings.sweep_grace_seconds))
    for user_key in users:
        hand_off(user_key)
    if users:
        log.info("outbox sweep handed on customers", extra={"count": len(users)})
    return len(users)


@app.task(name="parley.maintenance.prune_logs", soft_time_limit=240, time_limit=270)
def prune_logs() -> dict[str, int]:
    settings = get_settings()
    with session_scope() as session:
        return outbox.prune(session, utcnow() - timedelta(days=settings.retention_days))
