"""Hand work to the queue. The receiver calls ``enqueue_payload``; nothing else is needed."""

from __future__ import annotations

from kombu.exceptions import OperationalError


class QueueUnavailable(RuntimeError):
    """The broker did not take the message; the caller must not acknowledge it."""


def enqueue_payload(raw_body: str) -> None:
    """Queue one raw webhook body for processing, or raise QueueUnavailable."""
    from worker.tasks import process_payload

    try:
        process_payload.apply_async(args=[raw_body], retry=False)
    except (OperationalError, OSError, ConnectionError) as exc:
        raise QueueUnavailable(str(exc)) from exc
