"""Process one raw webhook payload: every message in its own transaction, then hand-off."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.exc import DBAPIError, OperationalError

from conversation.db import session_scope
from conversation.engine import EngineConfig
from conversation.inbound import apply_status, process_event
from conversation.models import InboundMessage, utcnow
from conversation.payload import parse_payload
from settings import Settings

log = logging.getLogger(__name__)


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        cancel_words=settings.cancel_words,
        max_invalid_answers=settings.max_invalid_answers,
        fallback_text=settings.fallback_text,
        fallback_period=timedelta(seconds=settings.fallback_period_seconds),
        default_expiry=timedelta(hours=settings.default_expiry_hours),
    )


def is_transient(exc: BaseException) -> bool:
    """Database unreachable or restarting: retry the whole payload later (it is idempotent)."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


@dataclass
class PayloadReport:
    handled: int = 0
    duplicates: int = 0
    failed: int = 0
    statuses: int = 0
    skipped: int = 0
    users_to_send: list[str] = field(default_factory=list)


def process_raw(raw: str, settings: Settings, hand_off: Callable[[str], None]) -> PayloadReport:
    """Run every item of ``raw``; ``hand_off(user_key)`` is called after each commit with replies.

    A database outage raises (the task retries the whole payload; handled items are then
    duplicates and skipped). Any other error is confined to its item: recorded as failed,
    its siblings still processed.
    """
    parsed = parse_payload(raw)
    report = PayloadReport(skipped=len(parsed.skipped))
    for item in parsed.skipped:
        log.warning("skipped malformed webhook item", extra={"where": item.where, "reason": item.reason})
    config = engine_config(settings)
    for event in parsed.messages:
        try:
            with session_scope() as session:
                result = process_event(session, event, config, mark_as_read=settings.mark_as_read)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("inbound message failed", extra={"wamid": event.wamid})
            _record_failure(event.wamid, event.user.key, event.message_type, event.raw, exc)
            report.failed += 1
            continue
        if result.duplicate:
            report.duplicates += 1
            continue
        report.handled += 1
        if result.outbox_ids:
            hand_off(result.user_key)
            report.users_to_send.append(result.user_key)
    for status in parsed.statuses:
        with session_scope() as session:
            apply_status(session, status)
        report.statuses += 1
    return report


def _record_failure(wamid: str, user_key: str, message_type: str, raw: dict, exc: Exception) -> None:
    """Dead-letter the item so a redelivery does not loop on it; never blocks later messages."""
    try:
        with session_scope() as session:
            existing = session.query(InboundMessage).filter_by(wamid=wamid).one_or_none()
            if existing is None:
                existing = InboundMessage(wamid=wamid, user_key=user_key, message_type=message_type, payload=raw)
                session.add(existing)
            existing.outcome = "failed"
            existing.error = f"{exc.__class__.__name__}: {exc}"[:2000]
            existing.received_at = existing.received_at or utcnow()
    except Exception:  # the failure record is best effort; the log line above has it
        log.exception("could not record the failed message", extra={"wamid": wamid})
