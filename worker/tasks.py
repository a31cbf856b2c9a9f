"""Celery tasks: thin envelopes (names, queues, limits) over plain functions.

What every task needs around its work (the soft time limit, retrying a database outage,
a clean log context) is :class:`worker.task_base.ParleyTask`'s, so each task below is only its work.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta
from functools import lru_cache

from conversation import event_outbox, handoff, outbox, reminder_sweep
from conversation.db import session_scope
from conversation.models import utcnow
from conversation.service import ConversationService
from conversation.template_cache import TEMPLATE_CACHE
from settings import get_settings
from templates.message_templates import load_catalogue
from worker import metrics
from worker.celery_app import app
from worker.event_delivery import EventPoster, deliver_due
from worker.graph_api import GraphClient
from worker.inbound import process_raw
from worker.sender import drain
from worker.task_base import ParleyTask

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
    base=ParleyTask,
    name="parley.inbound.process_payload",
    acks_late=True,
    max_retries=20,
    soft_time_limit=120,
    time_limit=150,
    # Items handled before the limit are committed; a retry skips them as duplicates.
    soft_limit_countdown=5,
    transient_backoff=(2, 60),
)
def process_payload(raw: str) -> dict[str, int]:
    """Every message and status of one webhook POST. Idempotent: wamids dedupe redeliveries.

    The counts it returns are what the worker's "succeeded" log line shows of the payload.
    """
    return asdict(process_raw(raw, get_settings(), hand_off, deliver_events_soon))


@app.task(
    base=ParleyTask,
    name="parley.outbox.deliver",
    acks_late=True,
    max_retries=None,
    soft_time_limit=240,
    time_limit=270,
    # The lease serializes senders, and replies already sent are marked: carry on at once.
    soft_limit_countdown=1,
    transient_backoff=(5, 5),
)
def deliver(user_key: str) -> dict[str, int]:
    """Send one customer's pending replies in order. Safe to run twice: a lease serializes it
    (``busy``: another sender held it and sends them)."""
    settings = get_settings()
    events = settings.events_url is not None
    result = drain(user_key, graph_client(), settings.send_max_attempts, events)
    if result.retry_in is not None:
        deliver.apply_async(args=[user_key], countdown=result.retry_in)
    if result.failed and events:
        deliver_events_soon()
    return {"sent": result.sent, "failed": result.failed, "busy": result.busy}


@app.task(base=ParleyTask, name="parley.maintenance.expire_conversations", soft_time_limit=240, time_limit=270)
def expire_conversations() -> int:
    with session_scope() as session:
        removed = ConversationService(session).cleanup_expired_conversations()
    if removed:
        metrics.count_engine_outcome("expired", removed)
        log.info("expired conversations removed", extra={"count": removed})
    return removed


@app.task(base=ParleyTask, name="parley.maintenance.sweep_outbox", soft_time_limit=240, time_limit=270)
def sweep_outbox() -> int:
    settings = get_settings()
    with session_scope() as session:
        users = outbox.users_to_sweep(session, utcnow(), timedelta(seconds=settings.sweep_grace_seconds))
    for user_key in users:
        hand_off(user_key)
    if users:
        log.info("outbox sweep handed on customers", extra={"count": len(users)})
    return len(users)


@app.task(base=ParleyTask, name="parley.maintenance.send_reminders", soft_time_limit=240, time_limit=270)
def send_reminders() -> int:
    """Queue the flows' due reminders (each once, whatever runs this twice), then hand them on."""
    catalogue = load_catalogue(get_settings().templates_dir).catalogue
    with session_scope() as session:
        users = reminder_sweep.send_due(session, TEMPLATE_CACHE.get(session), utcnow(), catalogue=catalogue)
    for user_key in users:
        hand_off(user_key)
    if users:
        log.info("reminders queued", extra={"count": len(users)})
    return len(users)


@app.task(base=ParleyTask, name="parley.maintenance.prune_logs", soft_time_limit=240, time_limit=270)
def prune_logs() -> dict[str, int]:
    settings = get_settings()
    older_than = utcnow() - timedelta(days=settings.retention_days)
    with session_scope() as session:
        counts = outbox.prune(session, older_than)
        counts["handoffs"] = handoff.prune(session, older_than)
        counts["events"] = event_outbox.prune(session, older_than)
    return counts


@app.task(base=ParleyTask, name="parley.maintenance.release_handoffs", soft_time_limit=240, time_limit=270)
def release_handoffs() -> int:
    """Give back to the bot every customer no person has written to for PARLEY_HANDOFF_TIMEOUT_HOURS."""
    timeout = timedelta(hours=get_settings().handoff_timeout_hours)
    with session_scope() as session:
        released = handoff.release_lapsed(session, utcnow(), timeout)
    if released:
        log.info("handoffs released after the timeout", extra={"count": len(released)})
    return len(released)


@lru_cache(maxsize=1)
def event_poster() -> EventPoster | None:
    """One HTTP client per worker process; None when no PARLEY_EVENTS_URL is set."""
    settings = get_settings()
    if settings.events_url is None or settings.events_secret is None:
        return None
    return EventPoster(settings.events_url, settings.events_secret)


# Few per pass: each leased event must be posted before its lease runs out, even if every
# POST before it takes its whole timeout.
EVENTS_PER_PASS = 4


@app.task(base=ParleyTask, name="parley.events.deliver", soft_time_limit=240, time_limit=270)
def deliver_events() -> dict[str, int]:
    """POST every due event to PARLEY_EVENTS_URL; one that fails is due again after its backoff.

    Run after a commit that recorded events, and by Beat for the retries. Two at once take
    different rows (each row is leased), so a burst of runs is harmless.
    """
    poster = event_poster()
    delivered = failed = 0
    while poster is not None:
        report = deliver_due(session_scope, poster, limit=EVENTS_PER_PASS)
        delivered, failed = delivered + report.delivered, failed + report.failed
        if report.delivered + report.failed < EVENTS_PER_PASS:
            break
    return {"delivered": delivered, "failed": failed}


def deliver_events_soon() -> None:
    """Ask a worker to post the events just committed; if the broker refuses, Beat's run does."""
    try:
        deliver_events.apply_async()
    except Exception as exc:
        log.warning("event delivery deferred to the next scheduled run: %s", exc.__class__.__name__)
