"""The base class of every parley task (worker/tasks.py, and the health probe)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from conversation.db import is_transient
from conversation.logs import clear_context

log = logging.getLogger(__name__)


class ParleyTask(Task):
    """The base of every parley task: its soft time limit, transient retries and log context.

    - Past its soft time limit, a task with ``soft_limit_countdown`` is tried again after
      that many seconds (what it committed so far stays; every task is idempotent); one
      without stops, and the next scheduled run carries on.
    - A database outage (``is_transient``) is retried after ``transient_backoff``:
      ``(first, cap)`` seconds, doubling per retry up to ``cap``, at most ``max_retries``.
      Any other error is raised as it is: retrying a bug only repeats it.
    - The correlation fields of the log are cleared before and after, because worker
      threads and processes run one task after another.
    """

    soft_limit_countdown: float | None = None
    transient_backoff: tuple[float, float] = (10.0, 60.0)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        clear_context()
        try:
            return super().__call__(*args, **kwargs)
        except SoftTimeLimitExceeded:
            if self.soft_limit_countdown is None:
                log.warning("task stopped at its soft time limit", extra={"task": self.name})
                return None
            log.warning("task retried after its soft time limit", extra={"task": self.name})
            raise self.retry(countdown=self.soft_limit_countdown) from None
        except Exception as exc:
            if not is_transient(exc):
                raise
            countdown = self.transient_countdown(self.request.retries)
            log.warning("database unavailable, task retried", extra={"task": self.name, "countdown": countdown})
            raise self.retry(exc=exc, countdown=countdown) from exc
        finally:
            clear_context()

    def transient_countdown(self, retries: int) -> float:
        """Seconds before retry number ``retries + 1`` of a database outage."""
        first, cap = self.transient_backoff
        return min(first * 2**retries, cap)
