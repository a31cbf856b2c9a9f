"""Drain one customer's outbox through the Graph API, in order, one sender at a time.

Rows are marked ``sending`` and committed before the HTTP call and marked ``accepted``
with their wamid right after, a batch ending at its first reply (read receipts ride
along: marking read twice is harmless), so a retry never resends a reply Graph
acknowledged. The only window for a duplicate is a crash between Graph's answer and that
commit, or a send whose answer never came (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TypeVar

from conversation import identity, outbox, window
from conversation.db import is_transient, session_scope
from conversation.logs import bind
from conversation.models import utcnow
from worker import faults, metrics
from worker.graph_api import GraphClient, GraphError, retry_delay

log = logging.getLogger(__name__)
T = TypeVar("T")

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


def drain(user_key: str, client: GraphClient, max_attempts: int, events: bool = False) -> DrainResult:
    """Send the customer's open rows in order until none is left or the next must wait.

    With ``events`` each message that fails for good records a ``message.failed`` event.

    Two transactions for a typical message (its read receipt and its reply): one takes the
    lease and the batch, one stores Graph's answers and takes the next batch or lets go.
    """
    with session_scope() as s:
        now = utcnow()
        if not outbox.acquire_lease(s, user_key, now):
            return DrainResult(0, 0, None, busy=True)
        batch = outbox.take(s, user_key, now)
        if not isinstance(batch, list):
            outbox.release_lease(s, user_key)
    sent = failed = 0
    holding = isinstance(batch, list)
    try:
        while isinstance(batch, list):
            outcomes, retry_in = _send_batch(user_key, batch, client, max_attempts)
            sent += sum(isinstance(o, outbox.Accepted) for o in outcomes)
            failed += sum(isinstance(o, outbox.Failed) for o in outcomes)
            done = batch
            settle = partial(_settle_and_take, user_key, outcomes, retry_in is None, events)
            user_key, batch = _with_db_retry(settle, "accepted send")
            holding = isinstance(batch, list)
            _report_accepted(done, outcomes)
            if retry_in is not None:
                return DrainResult(sent, failed, retry_in)
    finally:
        if holding:  # an error mid-batch: let go at once rather than after the lease runs out
            _with_db_retry(lambda: _release(user_key), "lease release")
    if isinstance(batch, outbox.Wait):
        return DrainResult(sent, failed, max((batch.until - utcnow()).total_seconds(), 0.05))
    return DrainResult(sent, failed, None)


def _settle_and_take(
    user_key: str, outcomes: list[outbox.Outcome], more: bool, events: bool = False
) -> tuple[str, list[outbox.Job] | outbox.Wait | None]:
    """Commit Graph's answers; then either take the next batch (keeping the lease) or let go.
    Returns the customer's identity, new if they moved meanwhile, and the batch.

    Until this commits, a crash or a retry sends the batch's reply again. The lease is
    renewed first: its row lock waits for an inbound transaction adding rows for this
    customer, so ``take`` sees them and none is left waiting for a sweep. A customer who
    changed number or BSUID while we sent took the lease along: we go on as them, or the
    lease would sit unreleased until it ran out.
    """
    with session_scope() as s:
        now = utcnow()
        for _ in range(3):  # one move per notice; a second one in these milliseconds is unheard of
            if outbox.keep_lease(s, user_key, now):
                break
            user_key = identity.owner_of(s, [o.job_id for o in outcomes], user_key)
        outbox.settle(s, user_key, outcomes, now, events)
        batch = outbox.take(s, user_key, now) if more else None
        if not isinstance(batch, list):
            outbox.release_lease(s, user_key)
        return user_key, batch


def _send_batch(
    user_key: str, batch: list[outbox.Job], client: GraphClient, max_attempts: int
) -> tuple[list[outbox.Outcome], float | None]:
    """Send each row of the batch in order; stop at a row that must be retried (later rows wait)."""
    outcomes: list[outbox.Outcome] = []
    for job in batch:
        bind(wamid=job.inbound_wamid)
        closed = window.refusal(job.content, job.last_inbound_at, utcnow()) if job.kind == "message" else None
        if closed is not None:  # never attempted: Graph would only answer 131047
            metrics.send_refused(job.kind, True, window.WINDOW_CLOSED_CODE, "window_closed")
            log.warning("not sent: window closed", extra={"outbox_id": job.id, "code": window.WINDOW_CLOSED_CODE})
            outcomes.append(outbox.Failed(job.id, window.WINDOW_CLOSED_CODE, closed))
            continue
        try:
            if job.kind == "mark_read":
                client.mark_read(job.phone_number_id, job.content["message_id"])
                wamid = None
            else:
                wamid = client.send(job.phone_number_id, job.to_phone, job.to_user_id, job.content).wamid
        except GraphError as exc:
            outcome = _classify(user_key, job, exc, max_attempts)
            outcomes.append(outcome)
            if isinstance(outcome, outbox.Retry):
                # Only a reply is ever retried (a read receipt fails for good), and a reply
                # ends its batch (outbox.take): no later row of the batch is left unsent.
                return outcomes, max((outcome.at - utcnow()).total_seconds(), 0.05)
            continue
        faults.point("after_send")
        outcomes.append(outbox.Accepted(job.id, wamid))
    return outcomes, None


def _report_accepted(batch: list[outbox.Job], outcomes: list[outbox.Outcome]) -> None:
    """Metrics and log lines, only once the answers are stored: nothing here may cost a resend."""
    jobs = {job.id: job for job in batch}
    for outcome in outcomes:
        if isinstance(outcome, outbox.Accepted):
            job = jobs[outcome.job_id]
            bind(wamid=job.inbound_wamid)
            metrics.send_accepted(job.kind, job.created_at)
            log.log(
                logging.INFO if job.kind == "message" else logging.DEBUG,
                "graph accepted",
                extra={"kind": job.kind, "outbox_id": job.id, "reply_wamid": outcome.wamid, "attempt": job.attempts},
            )


def _release(user_key: str) -> None:
    with session_scope() as s:
        outbox.release_lease(s, user_key)


def _with_db_retry(work: Callable[[], T], what: str) -> T:
    """Run one short transaction, retrying for STORE_RETRY_SECONDS while the database is away."""
    deadline = time.monotonic() + STORE_RETRY_SECONDS
    pause = 0.2
    while True:
        try:
            return work()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("database unavailable, retrying", extra={"what": what})
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _classify(user_key: str, job: outbox.Job, exc: GraphError, max_attempts: int) -> outbox.Outcome:
    """What to store for a refused send: failed for good, or retried after a delay."""
    now = utcnow()
    code, text = exc.code, str(exc)
    final = exc.disposition in ("permanent", "auth") or job.attempts >= max_attempts or job.kind == "mark_read"
    if final:
        metrics.send_refused(job.kind, True, code, exc.disposition)
        level = logging.ERROR if exc.disposition == "auth" else logging.WARNING
        log.log(level, "send failed for good", extra={"outbox_id": job.id, "code": code, "why": exc.disposition})
        return outbox.Failed(job.id, code, text)
    hold = exc.disposition == "pair_limit"
    if hold:
        with session_scope() as s:
            delay = retry_delay("pair_limit", outbox.pair_limit_hits(s, user_key))
    else:
        # Meta's Retry-After (or maintenance-mode minute) wins over our own backoff.
        delay = max(retry_delay(exc.disposition, job.attempts), exc.retry_after or 0.0)
    metrics.send_refused(job.kind, False, code, exc.disposition)
    log.info("send will be retried", extra={"outbox_id": job.id, "code": code, "delay": round(delay, 2)})
    return outbox.Retry(job.id, code, text, now + timedelta(seconds=delay), hold=hold)
