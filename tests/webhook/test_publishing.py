"""The receiver with its real ENQUEUE (worker/dispatch.py) on a real Redis, and its server settings.

tests/webhook/test_receiver.py checks the views with a fake queue; here every POST goes
through the per-process publisher into a private redis-server (tests/worker/test_dispatch.py
covers the publisher itself, and a real Celery worker consuming what it queued).
"""

from __future__ import annotations

import json
import runpy
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from settings import load_settings
from tests.conftest import ROOT
from tests.support.stack import Stack
from tests.support.webhooks import contact, message, webhook
from tests.worker.dispatch_helpers import celery_pointer, private_redis, queued_messages, task_args
from webhook import create_app
from webhook.signature import sign
from worker import dispatch

pytestmark = [pytest.mark.redis]

SECRET = "publishing-app-secret"


@pytest.fixture(scope="module")
def broker() -> Iterator[Stack]:
    with private_redis() as stack:
        yield stack


@pytest.fixture
def point_celery_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with celery_pointer(monkeypatch) as point:
        yield point


def receiver(broker_url: str) -> Flask:
    """The receiver as gunicorn builds it (default ENQUEUE), on ``broker_url``."""
    settings = load_settings(
        {
            "PARLEY_ENV": "test",
            "WHATSAPP_APP_SECRET": SECRET,
            "WHATSAPP_VERIFY_TOKEN": "t",
            "CELERY_BROKER_URL": broker_url,
        }
    )
    app = create_app({"SETTINGS": settings})
    assert app.config["ENQUEUE"] is dispatch.enqueue_payload
    return app


@pytest.fixture
def app(broker: Stack, point_celery_at: Any) -> Iterator[Flask]:
    if not broker.redis_up():
        broker.start_redis()
    point_celery_at(broker.broker_url)
    client = redis.Redis.from_url(broker.broker_url)
    client.flushall()
    client.close()
    yield receiver(broker.broker_url)


def signed_body(wamid: str) -> tuple[bytes, dict[str, str]]:
    user = "15550004242"
    body = json.dumps(webhook([message(user, "hi", wamid=wamid)], [contact(user)])).encode()
    return body, {"X-Hub-Signature-256": sign(body, SECRET), "Content-Type": "application/json"}


def post(app: Flask, wamid: str) -> int:
    body, headers = signed_body(wamid)
    return app.test_client().post("/webhook", data=body, headers=headers).status_code


def queued_wamids(broker: Stack) -> list[str]:
    client = redis.Redis.from_url(broker.broker_url)
    try:
        return [
            json.loads(task_args(m)[0])["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
            for m in queued_messages(client)
        ]
    finally:
        client.close()


def test_concurrent_posts_are_each_queued_exactly_once(app: Flask, broker: Stack) -> None:
    """64 threads post at once (as gthread's threads do): every 200 is in Redis, once."""
    wamids = [f"wamid.PUBLISH{uuid.uuid4().hex}" for _ in range(320)]
    statuses: dict[str, int] = {}
    start = threading.Barrier(64)

    def client(chunk: list[str]) -> None:
        start.wait()
        for wamid in chunk:
            statuses[wamid] = post(app, wamid)

    threads = [threading.Thread(target=client, args=(wamids[i::64],)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(statuses.values()) == {200}
    assert sorted(queued_wamids(broker)) == sorted(wamids)


def test_redis_down_is_503_fast_and_nothing_is_acknowledged(app: Flask, broker: Stack) -> None:
    assert post(app, f"wamid.PUBLISH{uuid.uuid4().hex}") == 200
    broker.stop_redis()
    try:
        started = time.monotonic()
        assert post(app, "wamid.PUBLISHDOWN") == 503
        assert time.monotonic() - started < 2.5
    finally:
        broker.start_redis()  # no persistence: it comes back empty
    retried = f"wamid.PUBLISH{uuid.uuid4().hex}"
    assert post(app, retried) == 200  # Meta's retry, once Redis is back
    assert queued_wamids(broker) == [retried]


def test_black_holed_broker_is_503_within_about_two_seconds(point_celery_at: Any) -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        point_celery_at(url)
        app = receiver(url)
        started = time.monotonic()
        assert post(app, "wamid.PUBLISHHOLE") == 503
        assert time.monotonic() - started < dispatch.PUBLISH_TIMEOUT_SECONDS + 1.0


# --- the recommended server settings -------------------------------------------------------------


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The settings gunicorn reads from the file; the environment it touches is restored."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # the file sets it at load
    monkeypatch.setenv("PARLEY_ENV", "test")
    monkeypatch.setenv("PARLEY_METRICS_DIR", str(tmp_path))
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_conf_recommends_threaded_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    assert conf["worker_class"] == "gthread"
    assert conf["threads"] >= 4
    assert conf["workers"] >= 2


def test_web_concurrency_sets_the_number_of_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    assert load_gunicorn_conf(monkeypatch, tmp_path)["workers"] == 5
