"""Is work moving? A probe round trip through one worker, and the age of a queue's oldest message.

A worker can stay connected to Redis, answer ``celery inspect ping`` (the broadcast
mailbox is a separate channel) and still fetch no task: a consumer that lost its place
in the event loop after a broker restart. Only a task that goes through the worker's
own task channel shows that it consumes, so the probe is a task:

- every worker also consumes its direct queue (``worker_direct``: ``<node name>.dq2``,
  on the same channel and prefetch as its task queues);
- ``python -m worker.health celery@$HOSTNAME`` publishes :func:`probe` there with a
  fresh token and waits for the task to set that token's key in the broker's Redis;
  exit status 0 when it does within the timeout, 1 otherwise (docker-compose.yml's
  healthcheck). ``--restart-after N`` also stops the worker (SIGTERM, a warm shutdown)
  after N failures in a row: Docker's restart policy acts on a container that exits,
  not on one marked unhealthy, so this is what gets a stuck worker restarted there.

A worker whose every process is busy takes the probe only when a task ends; the
healthcheck's retries give it minutes, far longer than any parley task.

:func:`oldest_waiting_seconds` reads how long the oldest message of a queue has waited,
from the ``parley_published_at`` header every parley message carries
(``worker/celery_app.py``); the receiver's ``/readyz`` and the worker metrics use it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from celery.utils.nodenames import worker_direct
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from worker.celery_app import PUBLISHED_HEADER, app
from worker.task_base import ParleyTask

PROBE_TASK = "parley.health.probe"
PROBE_KEY = "parley:probe:"
PROBE_TTL_SECONDS = 60
DEFAULT_TIMEOUT_SECONDS = 15.0
RESEND_SECONDS = 2.0


def broker_client(url: str, timeout: float = 2.0) -> Any:
    """A Redis client on the broker, with timeouts fit for a probe."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


@app.task(base=ParleyTask, name=PROBE_TASK, ignore_result=True, acks_late=False, soft_time_limit=10, time_limit=15)
def probe(token: str) -> None:
    """Answer a health probe: the token's key appears in the broker's Redis."""
    client = broker_client(str(app.conf.broker_url))
    try:
        client.set(PROBE_KEY + token, "1", ex=PROBE_TTL_SECONDS)
    finally:
        client.close()


def round_trip(nodename: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> float:
    """Seconds a probe took through worker ``nodename``; raises TimeoutError when it did not return."""
    broker_url = str(app.conf.broker_url)
    if not broker_url.startswith(("redis://", "rediss://")):
        raise RuntimeError("the worker health probe needs a Redis broker")
    token = uuid.uuid4().hex
    started = time.monotonic()
    deadline = started + timeout
    client = broker_client(broker_url)
    next_send = started
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_send:
                # Sent again every few seconds: a worker still (re)connecting may not have
                # declared its direct queue's binding yet, and a probe routed before that is
                # dropped. expires: a probe nobody took must not run later and look like an answer.
                with contextlib.suppress(OSError, RedisError, KombuError):
                    app.send_task(
                        PROBE_TASK, args=[token], queue=worker_direct(nodename), expires=deadline - now, retry=False
                    )
                next_send = now + RESEND_SECONDS
            with contextlib.suppress(OSError, RedisError):  # the broker hiccups: ask until the deadline
                if client.delete(PROBE_KEY + token):
                    return time.monotonic() - started
            time.sleep(0.05)
    finally:
        client.close()
    raise TimeoutError(f"no answer from {nodename} within {timeout:g}s")


def oldest_waiting_seconds(client: Any, queue: str, now: float | None = None) -> float:
    """How long the oldest message of ``queue`` has waited (0 when empty or unstamped).

    kombu's Redis transport pushes on the left and pops on the right, so the oldest
    message is the list's last element.
    """
    raw = client.lindex(queue, -1)
    return message_age(raw, time.time() if now is None else now)


def message_age(raw: bytes | str | None, now: float) -> float:
    """Age of one serialised kombu message from its publish stamp; 0 when absent or unreadable."""
    if not raw:
        return 0.0
    try:
        published = float(json.loads(raw)["headers"][PUBLISHED_HEADER])
    except (ValueError, KeyError, TypeError):
        return 0.0  # published before stamps existed, or not a parley message
    return max(now - published, 0.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker.health", description="Exit 0 when the worker takes and runs a probe task in time."
    )
    parser.add_argument("nodename", help="the worker's node name, e.g. celery@$HOSTNAME")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS)
    parser.add_argument(
        "--restart-after",
        type=int,
        default=0,
        metavar="N",
        help="after N failures in a row, SIGTERM --pid (the worker: a warm shutdown, then its restart policy)",
    )
    parser.add_argument("--pid", type=int, default=1, help="the worker's main process (1 in its container)")
    parser.add_argument("--state", type=Path, default=None, help="where failures in a row are counted")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    state = args.state or Path(tempfile.gettempdir()) / (
        "parley-health-" + re.sub(r"[^A-Za-z0-9_.-]", "_", args.nodename)
    )
    try:
        seconds = round_trip(args.nodename, args.timeout)
    except Exception as exc:  # the class only: a broker error's text can carry its URL
        detail = str(exc) if isinstance(exc, TimeoutError) else exc.__class__.__name__
        failures = _count_failure(state)
        print(f"parley: worker not consuming ({failures} in a row): {detail}", file=sys.stderr, flush=True)
        if args.restart_after and failures >= args.restart_after:
            # A plain Docker host restarts a container that exits, not one marked unhealthy.
            print(f"parley: stopping the worker (pid {args.pid}) so it is restarted", file=sys.stderr, flush=True)
            state.unlink(missing_ok=True)
            os.kill(args.pid, signal.SIGTERM)
        return 1
    state.unlink(missing_ok=True)
    print(f"parley: worker {args.nodename} consumed a probe in {seconds:.2f}s", flush=True)
    return 0


def _count_failure(state: Path) -> int:
    try:
        failures = int(state.read_text() or 0) + 1
    except (OSError, ValueError):
        failures = 1
    with contextlib.suppress(OSError):
        state.write_text(str(failures))
    return failures


if __name__ == "__main__":
    sys.exit(main())
