"""POST recorded events to ``PARLEY_EVENTS_URL``, signed, each until it lands.

One pass takes the due events (one short transaction, which leases them), posts each
outside any transaction, and settles each in its own: a 2xx answer marks it delivered,
anything else (an error status, a refused connection, a timeout) makes it due again after
a backoff. A crash mid-pass loses nothing: the lease runs out and the next pass retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import requests
from sqlalchemy.orm import Session

from conversation import event_outbox
from conversation.models import utcnow

log = logging.getLogger(__name__)


class EventPoster:
    """One HTTP client (one connection pool) for the events endpoint; no automatic retries."""

    def __init__(self, url: str, secret: str, connect_timeout: float = 3.05, read_timeout: float = 10.0) -> None:
        if not secret:
            raise ValueError("events are signed: a secret is required")
        if connect_timeout + read_timeout >= event_outbox.LEASE.total_seconds():
            raise ValueError("a POST must end before its lease does, or two deliverers could overlap")
        self.url = url
        self.timeout = (connect_timeout, read_timeout)
        self._secret = secret
        self._http = requests.Session()
        self._http.headers.update({"User-Agent": "parley-events", "Content-Type": "application/json"})

    def post(self, attempt: event_outbox.Attempt) -> str | None:
        """Send one event; None when the receiver took it, else why not (kept on the row)."""
        headers = {
            event_outbox.SIGNATURE_HEADER: event_outbox.sign(self._secret, attempt.body),
            event_outbox.ID_HEADER: str(attempt.event_id),
            "X-Parley-Event-Type": attempt.kind,
        }
        try:
            response = self._http.post(self.url, data=attempt.body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            return f"{exc.__class__.__name__}"  # never the URL, which may carry a token
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True)
class PassReport:
    delivered: int
    failed: int


def deliver_due(
    scope: Callable[[], AbstractContextManager[Session]],
    poster: EventPoster,
    *,
    limit: int = 50,
    clock: Callable[[], datetime] = utcnow,
) -> PassReport:
    """One pass over the due events; ``scope`` opens a unit of work (``session_scope``)."""
    with scope() as session:
        attempts = event_outbox.take_due(session, clock(), limit)
    delivered = failed = 0
    for attempt in attempts:
        error = poster.post(attempt)
        with scope() as session:
            if error is None:
                event_outbox.delivered(session, attempt, clock())
                delivered += 1
            else:
                at = event_outbox.failed(session, attempt, error, clock())
                failed += 1
                log.warning("event %s not delivered (%s), attempt %d; next at %s", attempt.event_id, error,
                            attempt.attempts, at.isoformat())  # fmt: skip
    return PassReport(delivered, failed)
