"""gunicorn settings for the receiver.

gunicorn reads ``gunicorn.conf.py`` from its working directory when no ``-c`` is given, so
``gunicorn "webhook:create_app()"`` started from the repository root (the image's ``/app``)
gets all of this with no flag; from elsewhere pass ``-c path/to/gunicorn.conf.py``. gunicorn
puts its working directory on ``sys.path`` before loading this file, which is what lets
it import ``settings`` and ``conversation`` below. What it sets:

- The recommended server settings: threaded workers (``gthread``, 8 threads each), one
  process per CPU (at least 2; ``WEB_CONCURRENCY`` or ``--workers`` override it). A
  webhook request spends most of its time waiting for Redis to confirm the message, so a
  thread, not a whole process, waits; the threads of a process share its kept broker
  connections (worker/dispatch.py). Measured against sync workers in bench/receiver.py.
- Prometheus multiprocess mode: the master points ``PROMETHEUS_MULTIPROC_DIR`` at
  ``{PARLEY_METRICS_DIR}/web`` (emptied when it starts) before forking, so ``/metrics``
  sums every worker; a dead worker's live gauges are dropped (``child_exit``).
- gunicorn's own lines (boot, worker exits, access log) in parley's format and masking
  (``PARLEY_LOG_FORMAT``), so a JSON log stream stays one object per line.

Command-line options (``--bind``, ``--workers``, ...) still apply on top of this file.
Nothing here imports prometheus_client: it picks its mode at first import, and the
workers inherit the master's modules.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from conversation.logs import gunicorn_log_config
from settings import SettingsError, load_settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger("gunicorn.error")

worker_class = "gthread"
threads = 8
workers = int(os.environ.get("WEB_CONCURRENCY") or 0) or max(2, len(os.sched_getaffinity(0)))

try:
    _settings = load_settings()
except SettingsError as exc:
    # Refuse here, in the master, before any worker is forked: one line, once. Left to
    # create_app, every worker would print it and the second failure, arriving while
    # gunicorn is already halting, ends in a traceback. SystemExit is no Exception, so
    # gunicorn's config loader lets it through without a traceback of its own.
    print(" ".join(str(exc).split()), file=sys.stderr)
    raise SystemExit(1) from None


def use_metrics_dir(path: Path) -> bool:
    """Create ``path`` and point prometheus_client at it; False (per-process metrics) if unusable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("metrics directory %s unusable, /metrics shows one worker per scrape: %s", path, exc)
        return False
    os.environ[MULTIPROC_ENV] = str(path)
    return True


logconfig_dict = gunicorn_log_config(_settings)
# Set here, at config load, not in a hook: with --preload the master imports the app
# (and prometheus_client) before on_starting runs.
use_metrics_dir(_settings.metrics_dir / "web")


def on_starting(server: Any) -> None:
    """Master, once, before the first fork (not on a HUP reload): drop the last run's files."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        for old in Path(path).glob("*.db"):
            old.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """Master, when a worker exits: its live-gauge files go (counters stay summed)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
