"""The receiver started exactly as the README gives it: ``gunicorn "webhook:create_app()"``.

No ``-c``, no ``--workers``: run from the repository root, gunicorn reads
``gunicorn.conf.py`` there by itself. Two processes (``WEB_CONCURRENCY=2``, which plain
gunicorn honours too, so without the config file the same command would still run two
processes, each answering ``/metrics`` with its own counters). With the config,
Prometheus multiprocess mode sums both, so the webhook counters never go down from one
scrape to the next and end at the number of webhooks sent. The broker is a private
redis-server; nothing consumes the queue (the counters are the receiver's).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.database import fresh_database
from tests.support.stack import BIN, ROOT, Stack, new_workdir, require_redis_server, wait_until
from tests.support.webhooks import contact, message, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

SCRAPES = 40
PER_SCRAPE = 6  # webhooks sent, concurrently, before each scrape
COUNTERS = ("parley_webhooks_received_total", "parley_webhooks_queued_total")


def counters(url: str) -> dict[str, float]:
    """One scrape of ``url``: the value of each of COUNTERS."""
    response = requests.get(url, timeout=5)
    assert response.status_code == 200, response.text[:500]
    found = dict.fromkeys(COUNTERS, 0.0)
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name in found:
                found[sample.name] += sample.value
    return found


def counter_files(stack: Stack) -> list[Path]:
    return list((stack.workdir / "metrics" / "web").glob("counter_*.db"))


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def receiver() -> Iterator[Stack]:
    """A private Redis, and gunicorn launched with the bare command from the root."""
    require_redis_server()
    with fresh_database() as url:
        stack = Stack(database_url=url, stub=None, workdir=new_workdir())
        env = {**stack.env(), "WEB_CONCURRENCY": "2"}
        # Not even PYTHONPATH: gunicorn puts its working directory on sys.path itself.
        env.pop("PYTHONPATH")
        web = None
        try:
            stack.start_redis()
            with open(stack.workdir / "web.log", "ab") as log:
                web = subprocess.Popen(
                    [str(BIN / "gunicorn"), "webhook:create_app()", "--bind", f"127.0.0.1:{stack.web_port}"],
                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            wait_until(lambda: answers(f"{stack.base_url}/healthz"), 30, "gunicorn")
            # Both workers up: in multiprocess mode each writes its counter file (one per
            # process id) in {PARLEY_METRICS_DIR}/web when it imports the app. Without
            # gunicorn.conf.py nothing is written there and this times out.
            wait_until(lambda: len(counter_files(stack)) == 2, 30, "two gunicorn workers in multiprocess mode")
            yield stack
        finally:
            if web is not None:
                os.killpg(web.pid, signal.SIGTERM)
                web.wait(timeout=30)
            stack.stop_all()
            shutil.rmtree(stack.workdir, ignore_errors=True)


def test_counters_only_grow_across_scrapes_of_the_plain_command(receiver: Stack) -> None:
    def send(n: int) -> int:
        user = f"1555{n:07d}"  # fictional numbers (555)
        return receiver.post(webhook([message(user, "hi")], [contact(user)])).status_code

    seen = dict.fromkeys(COUNTERS, 0.0)
    with ThreadPoolExecutor(max_workers=PER_SCRAPE) as pool:
        for n in range(1, SCRAPES + 1):
            sent = range((n - 1) * PER_SCRAPE, n * PER_SCRAPE)
            assert list(pool.map(send, sent)) == [200] * PER_SCRAPE
            scraped = counters(f"{receiver.base_url}/metrics")
            for name in COUNTERS:
                now = scraped[name]
                assert now >= seen[name], f"{name} went down at scrape {n}: {seen[name]} -> {now}"
                seen[name] = now
            # Every POST so far is counted, whichever process took it and whichever answers.
            assert seen["parley_webhooks_queued_total"] == n * PER_SCRAPE
    assert seen == dict.fromkeys(COUNTERS, float(SCRAPES * PER_SCRAPE))
    # Still the same two processes: no worker died and came back with fresh counters.
    assert len(counter_files(receiver)) == 2
