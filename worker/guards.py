"""Startup guards: a process whose configuration could lose or repeat messages does not start.

Each check raises :class:`StartRefused` with a one-line reason naming the cause:

- production secrets missing or unsafe (``settings.load_settings`` decides, reused here);
- fault-injection variables (``worker/faults.py``) set in production;
- the Redis broker may evict keys (``maxmemory-policy`` other than ``noeviction``): an
  evicted queue or unacked entry is a webhook acknowledged to Meta and then lost;
- parley's own texts or a deployment's overrides of them do not load;
- the broker's visibility timeout is not longer than a task can stay unacknowledged
  (its hard time limit plus the longest retry countdown): Redis would hand the running
  task to a second worker.

Wired in ``worker/celery_app.py`` (``worker_init``, ``beat_init``); the receiver refuses
missing production secrets in ``webhook.create_app`` (it cannot import this package: that
builds the Celery app, which needs those same settings).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from settings import Settings, SettingsError, load_settings
from worker import faults

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

# kombu's Redis default when broker_transport_options sets none.
KOMBU_DEFAULT_VISIBILITY_TIMEOUT = 3600.0
BROKER_CHECK_SECONDS = 10.0


class StartRefused(SettingsError):
    """The process must not start; ``str()`` is the one-line reason for the operator."""


def check_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings, or StartRefused when production secrets are missing or unsafe."""
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        raise StartRefused(" ".join(str(exc).split())) from None
    if settings.production:
        injected = faults.configured(dict(os.environ if env is None else env))
        if injected:
            raise StartRefused(f"refusing to start in production: test fault injection is set ({', '.join(injected)})")
    return settings


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


def check_broker_eviction(broker_url: str, wait: float = BROKER_CHECK_SECONDS) -> str | None:
    """Refuse a Redis broker that may evict keys; returns the policy seen (None: not checked).

    Uses ``INFO memory`` rather than ``CONFIG GET``, which managed Redis services often
    disable. An unreachable broker is retried for ``wait`` seconds, then left to Celery's
    own reconnect loop with a warning: refusing would turn a slow Redis into a crash loop.
    """
    if not is_redis(broker_url):
        return None
    import redis

    client = redis.Redis.from_url(broker_url, socket_connect_timeout=2, socket_timeout=5)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                info = client.info("memory")
                break
            except redis.ConnectionError:
                if time.monotonic() >= deadline:
                    log.warning("could not check the broker's maxmemory-policy: Redis unreachable")
                    return None
                time.sleep(0.5)
    finally:
        client.close()
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        raise StartRefused(
            f"refusing to start: the Redis broker has maxmemory-policy {policy}, which evicts queued tasks;"
            " set maxmemory-policy noeviction"
        )
    return policy


def longest_unacked_seconds(app: Celery) -> tuple[float, str]:
    """How long a parley task can stay unacknowledged: hard time limit + longest countdown."""
    from worker.graph_api import MAINTENANCE_SECONDS, PAIR_LIMIT_CAP_SECONDS, RETRY_CAP_SECONDS

    app.loader.import_default_modules()  # worker_init fires before the includes are imported
    default = float(app.conf.task_time_limit or 0)
    limits = {name: float(task.time_limit or default) for name, task in app.tasks.items() if name.startswith("parley.")}
    name, limit = max(limits.items(), key=lambda item: item[1], default=("(no task)", default))
    # A retry or hand-off with a countdown sits reserved, unacknowledged, until it is due.
    countdown = max(RETRY_CAP_SECONDS, PAIR_LIMIT_CAP_SECONDS, MAINTENANCE_SECONDS)
    return limit + countdown, f"{limit:g}s time limit of {name} + {countdown:g}s retry countdown"


def check_visibility_timeout(app: Celery) -> None:
    """Refuse a Redis visibility timeout that a running or waiting task can outlive."""
    if not is_redis(str(app.conf.broker_url or "")):
        return
    options = app.conf.broker_transport_options or {}
    timeout = float(options.get("visibility_timeout", KOMBU_DEFAULT_VISIBILITY_TIMEOUT))
    needed, why = longest_unacked_seconds(app)
    if timeout <= needed:
        raise StartRefused(
            f"refusing to start: broker visibility_timeout {timeout:g}s is not longer than a task can stay"
            f" unacknowledged ({why}); Redis would hand it to a second worker"
        )


def check_texts(settings: Settings) -> None:
    """parley's own texts load with the deployment's overrides (``texts/`` beside the flows):
    a worker would otherwise fail every message on a typo in one of them."""
    from conversation.texts.catalogue import texts_problems

    # Read afresh, not through the per-process cache: the files are what this start will use.
    problems = texts_problems(settings.templates_dir / "texts", settings.default_language)
    if problems:
        raise StartRefused(f"{len(problems)} problem(s) in parley's texts: " + "; ".join(problems))


def check_worker(app: Celery, env: Mapping[str, str] | None = None) -> None:
    """Every guard for a Celery worker or Beat; raises StartRefused."""
    check_texts(check_settings(env))
    check_visibility_timeout(app)
    check_broker_eviction(str(app.conf.broker_url or ""))


def enforce(app: Celery) -> None:
    """Run the worker guards; on refusal print the one line and exit (status 2)."""
    try:
        check_worker(app)
    except StartRefused as exc:
        print(f"parley: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
