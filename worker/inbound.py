"""Process one raw webhook payload: every message in its own transaction, then hand-off."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded

from conversation.content import text_message
from conversation.db import is_transient, session_scope
from conversation.engine_settings import engine_config
from conversation.events import InboundEvent
from conversation.logs import bind, clear_context
from conversation.marketing import apply_preference
from conversation.models import utcnow
from conversation.outbox import apply_status
from conversation.payload import ParsedPayload, parse_payload
from conversation.state import EngineConfig
from conversation.template_status import record as record_template_update
from conversation.turn import InboundResult, dead_letter, process_event
from conversation.voice import voice
from settings import Settings
from worker import faults, metrics

log = logging.getLogger(__name__)

# A message that fails this many times in a row (not a database outage) is dead-lettered.
POISON_ATTEMPTS = 3


@dataclass
class PayloadReport:
    handled: int = 0
    duplicates: int = 0
    failed: int = 0
    statuses: int = 0
    skipped: int = 0


def process_raw(
    raw: str,
    settings: Settings,
    hand_off: Callable[[str], None],
    events_recorded: Callable[[], None] | None = None,
) -> PayloadReport:
    """Run every item of ``raw``; ``hand_off(user_key)`` is called after each commit with replies,
    ``events_recorded()`` after a commit that recorded events for ``PARLEY_EVENTS_URL``.

    A database outage raises (the task retries the whole payload; handled items are then
    duplicates and skipped). Any other error is confined to its item: tried POISON_ATTEMPTS
    times, then dead-lettered (outcome "failed" with the error, an apology queued to the
    customer), its siblings and the customer's later messages still processed.
    """
    parsed = parse_payload(raw)
    report = PayloadReport(skipped=len(parsed.skipped))
    metrics.count_inbound("unknown", "skipped", len(parsed.skipped))
    for item in parsed.skipped:
        log.warning("skipped malformed webhook item", extra={"where": item.where, "reason": item.reason})
    config = engine_config(settings)
    events = settings.events_url is not None
    for event in parsed.messages:
        bind(wamid=event.wamid)  # the correlation id of every line about this message
        try:
            result = _process_item(event, config, settings.mark_as_read, events)
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, SoftTimeLimitExceeded):
                raise  # the task retries the payload later; handled items are then duplicates
            log.exception("inbound message failed", extra={"wamid": event.wamid})
            if _record_failure(event, exc, voice(config, None).texts.action_failed):
                _hand_off(hand_off, event.user.key)
            report.failed += 1
            metrics.count_inbound(event.message_type, "failed")
            continue
        faults.point("after_commit", event.text)
        if result.duplicate:
            report.duplicates += 1
            metrics.count_inbound(event.message_type, "duplicate")
            # A redelivery after a crash between commit and hand-off: send now, not at the next sweep.
            _hand_off(hand_off, result.user_key)
            continue
        report.handled += 1
        metrics.message_handled(event.message_type, result.outcome, event.timestamp)
        log.info(
            "inbound message handled",
            extra={"type": event.message_type, "outcome": result.outcome, "user_key": result.user_key},
        )
        if result.outbox_ids:
            _hand_off(hand_off, result.user_key)
        if result.events and events_recorded is not None:
            events_recorded()
    clear_context()
    for status in parsed.statuses:
        with session_scope() as session:
            applied = apply_status(session, status, events)
        if applied == "applied" and status.status == "failed" and events and events_recorded is not None:
            events_recorded()
        metrics.count_status(status.status, applied, status.error_code)
        report.statuses += 1
    _account_changes(parsed)
    return report


def _account_changes(parsed: ParsedPayload) -> None:
    """Marketing preferences and template verdicts, each in its own transaction."""
    for change in parsed.preferences:
        with session_scope() as session:
            apply_preference(session, change)
    for update in parsed.template_updates:
        with session_scope() as session:
            record_template_update(session, update, utcnow())
        log.info("message template update", extra={"template": update.name, "status": update.status})


def _process_item(event: InboundEvent, config: EngineConfig, mark_as_read: bool, events: bool) -> InboundResult:
    """One message in its own transaction, tried up to POISON_ATTEMPTS times.

    A database outage is raised at once (the task retries the payload later); any other
    error is retried here, then raised for the caller to dead-letter.
    """
    for attempt in range(1, POISON_ATTEMPTS + 1):
        try:
            with session_scope() as session:
                result = process_event(session, event, config, mark_as_read=mark_as_read, events=events)
                faults.point("before_commit", event.text)
            return result
        except Exception as exc:
            # Past the soft time limit there is no time for another try: the task retries.
            if is_transient(exc) or isinstance(exc, SoftTimeLimitExceeded) or attempt == POISON_ATTEMPTS:
                raise
            log.warning("inbound message failed, trying again", extra={"wamid": event.wamid, "attempt": attempt})
            time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


def _hand_off(hand_off: Callable[[str], None], user_key: str) -> None:
    try:
        hand_off(user_key)
    except Exception:  # broker down: the outbox sweep hands the committed rows on later
        log.warning("hand-off failed; the outbox sweep will send", exc_info=True)


def _record_failure(event: InboundEvent, exc: Exception, apology: str) -> bool:
    """Dead-letter the item and queue an apology to the customer; True when one was queued.

    Best effort: the log line of the failure is already written, so an error here is
    logged and swallowed rather than lose the payload's other items.
    """
    error = f"after {POISON_ATTEMPTS} attempts: {exc.__class__.__name__}: {exc}"
    try:
        with session_scope() as session:
            return dead_letter(session, event, error, text_message(apology), utcnow())
    except Exception:
        log.exception("could not record the failed message", extra={"wamid": event.wamid})
        return False
