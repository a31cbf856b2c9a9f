"""The periodic schedule. Run exactly one: ``celery -A celery_beat beat``.

Every job is safe if two Beat processes run by mistake (batched deletes skip locked
rows; the sweep's hand-offs are serialized per customer by the sender lease; a reminder is
cleared under the customer's locks in the transaction that queues it).
"""

from __future__ import annotations

from settings import get_settings
from worker.celery_app import app

settings = get_settings()

app.conf.beat_schedule = {
    "expire-conversations": {
        "task": "parley.maintenance.expire_conversations",
        "schedule": float(settings.expire_interval_seconds),
    },
    "sweep-outbox": {
        "task": "parley.maintenance.sweep_outbox",
        "schedule": float(settings.sweep_interval_seconds),
    },
    "send-reminders": {
        "task": "parley.maintenance.send_reminders",
        "schedule": float(settings.sweep_interval_seconds),
    },
    "prune-logs": {
        "task": "parley.maintenance.prune_logs",
        "schedule": float(settings.prune_interval_seconds),
    },
    "release-handoffs": {
        "task": "parley.maintenance.release_handoffs",
        "schedule": float(settings.expire_interval_seconds),
    },
}
if settings.events_url is not None:
    # Retries of events a receiver refused (their backoff starts at a few seconds).
    app.conf.beat_schedule["deliver-events"] = {"task": "parley.events.deliver", "schedule": 5.0}

__all__ = ["app"]
