"""Drain one customer's outbox through the Graph API, in order, one sender at a time.

A row is marked ``sending`` and committed before the HTTP call and marked ``accepted``
with its wamid right after, so a retry never resends what Graph acknowledged. The only
window for a duplicate is a crash between Graph's answer and that commit, or a send
whose answer never came (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from conversation import outbox
from conversation.db import session_scope
from conversation.logs import bind
from conversation.models import utcnow
from worker import faults, metrics
from worker.graph import GraphClient, GraphError, retry_delay
from worker.inbound import is_transient

log = logging.getLogger(__name__)

# How long to keep trying to store a wamid Graph returned while the database is away (a
# Postgres restart takes seconds); giving up means a resend, i.e. a duplicate. Kept well
# under outbox.LEASE so no second sender can take over meanwhile.
STORE_RETRY_SECONDS = 20.0


@dataclass(frozen=True)
class DrainResult:
    sent: int
    failed: int
    retry_in: float | None  # seconds until the next attempt is due, if one is waiting
    busy: bool = False  # another sender holds this customer's lease


def drain(user_key: str, client: GraphClient, max_attempts: int) -> DrainResult:
    sent = failed = 0
    while True:
        with session_scope() as s:
            if not outbox.acquire_lease(s, user_key, utcnow()):
                return DrainResult(sent, failed, None, busy=True)
        try:
            retry_in, n_sent, n_failed = _drain_locked(user_key, client, max_attempts)
        finally:
            # Retried through a database restart, so the lease is not left to run out.
            _with_db_retry(lambda: _release(user_key), "lease release")
        sent, failed = sent + n_sent, failed + n_failed
        if retry_in is not None:
            return DrainResult(sent, failed, retry_in)
        # A row committed while we held the lease may have had its hand-off refused as
        # "busy"; look once more after releasing so it is never left waiting for a sweep.
        with session_scope() as s:
            if not outbox.has_open(s, user_key):
                return DrainResult(sent, failed, None)


def _drain_locked(user_key: str, client: GraphClient, max_attempts: int) -> tuple[float | None, int, int]:
    sent = failed = 0
    while True:
        now = utcnow()
        with session_scope() as s:
            outbox.renew_lease(s, user_key, now)
            job = outbox.take_next(s, user_key, now)
        if job is None:
            return None, sent, failed
        if isinstance(job, outbox.Wait):
            return max((job.until - now).total_seconds(), 0.05), sent, failed
        bind(wamid=job.inbound_wamid)
        try:
            if job.kind == "mark_read":
                client.mark_read(job.phone_number_id, job.content["message_id"])
                wamid = None
            else:
                wamid = client.send(job.phone_number_id, job.to_phone, job.to_user_id, job.content).wamid
        except GraphError as exc:
            done = _record_error(user_key, job, exc, max_attempts)
            if done is None:
                failed += 1
                continue
            return done, sent, failed
        faults.point("after_send")
        _store_accepted(user_key, job.id, wamid)
        metrics.send_accepted(job.kind, job.created_at)
        log.log(
            logging.INFO if job.kind == "message" else logging.DEBUG,
            "graph accepted",
            extra={"kind": job.kind, "outbox_id": job.id, "reply_wamid": wamid, "attempt": job.attempts},
        )
        sent += 1


def _store_accepted(user_key: str, job_id: int, wamid: str | None) -> None:
    """Commit Graph's acceptance; until this commits, a crash or a retry sends the message again."""

    def store() -> None:
        with session_scope() as s:
            outbox.mark_accepted(s, job_id, wamid, utcnow())
            outbox.clear_hold(s, user_key)

    _with_db_retry(store, "accepted send")


def _release(user_key: str) -> None:
    with session_scope() as s:
        outbox.release_lease(s, user_key)


def _with_db_retry(work: Callable[[], None], what: str) -> None:
    """Run one short transaction, retrying for STORE_RETRY_SECONDS while the database is away."""
    deadline = time.monotonic() + STORE_RETRY_SECONDS
    pause = 0.2
    while True:
        try:
            work()
            return
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("database unavailable, retrying", extra={"what": what})
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _record_error(user_key: str, job: outbox.Job, exc: GraphError, max_attempts: int) -> float | None:
    """Store the failure; return seconds to wait before retrying, or None if it is final."""
    now = utcnow()
    code, text = exc.code, str(exc)
    final = exc.disposition in ("permanent", "auth") or job.attempts >= max_attempts or job.kind == "mark_read"
    with session_scope() as s:
        if final:
            outbox.mark_failed(s, job.id, code, text, now)
            metrics.send_refused(job.kind, True, code, exc.disposition)
            level = logging.ERROR if exc.disposition == "auth" else logging.WARNING
            log.log(level, "send failed for good", extra={"outbox_id": job.id, "code": code, "why": exc.disposition})
            return None
        if exc.disposition == "pair_limit":
            delay = retry_delay("pair_limit", outbox.pair_limit_hits(s, user_key))
            outbox.hold_user(s, user_key, now + timedelta(seconds=delay))
        else:
            # Meta's Retry-After (or maintenance-mode minute) wins over our own backoff.
            delay = max(retry_delay(exc.disposition, job.attempts), exc.retry_after or 0.0)
        outbox.mark_retry(s, job.id, code, text, now + timedelta(seconds=delay), now)
    metrics.send_refused(job.kind, False, code, exc.disposition)
    log.info("send will be retried", extra={"outbox_id": job.id, "code": code, "delay": round(delay, 2)})
    return delay
