"""The receiver's metrics: counters per outcome, the /metrics page, multiprocess mode,
the queue depth read from Redis, and the correlation id on the receiver's log lines.

Counters live in the process-wide registry, so every test compares before and after.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from settings import load_settings
from webhook import create_app
from webhook.signature import sign
from worker.dispatch import QueueUnavailable

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-app-secret"
ENV = {"PARLEY_ENV": "test", "WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_VERIFY_TOKEN": "t"}


class Queue:
    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.error: Exception | None = None

    def __call__(self, raw: str) -> None:
        if self.error is not None:
            raise self.error
        self.bodies.append(raw)


def make_app(queue: Queue, **env: str) -> Flask:
    return create_app({"SETTINGS": load_settings({**ENV, **env}), "ENQUEUE": queue, "TESTING": True})


@pytest.fixture
def queue() -> Queue:
    return Queue()


@pytest.fixture
def client(queue: Queue) -> FlaskClient:
    return make_app(queue, PARLEY_MAX_BODY_BYTES="4096").test_client()


def payload(wamid: str = "wamid.TEST1") -> dict[str, Any]:
    message = {"id": wamid, "from": "15550001111", "timestamp": "1800000000", "type": "text", "text": {"body": "hi"}}
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"}, "messages": [message]}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }


def post(client: FlaskClient, body: bytes, signature: str | None = "sign") -> int:
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["X-Hub-Signature-256"] = sign(body, SECRET)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/webhook", data=body, headers=headers).status_code


def scrape(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_signed_post_counts_received_queued_and_its_duration(client: FlaskClient, queue: Queue) -> None:
    before = scrape(client)
    assert post(client, json.dumps(payload()).encode()) == 200
    after = scrape(client)
    assert len(queue.bodies) == 1
    for name in ("parley_webhooks_received_total", "parley_webhooks_queued_total"):
        assert value(after, name) - value(before, name) == 1, name
    count = "parley_webhook_request_duration_seconds_count"
    assert value(after, count) - value(before, count) == 1
    # Scrapes and other routes are not webhook requests.
    assert value(scrape(client), count) == value(after, count)


@pytest.mark.parametrize(
    ("reason", "body", "signature", "status"),
    [
        ("bad_signature", b'{"object": "whatsapp_business_account"}', "sha256=" + "0" * 64, 403),
        ("missing_signature", b'{"object": "whatsapp_business_account"}', None, 401),
        ("too_large", b"x" * 5000, "sign", 413),
        ("not_json", b"not json", "sign", 400),
        ("ignored_object", b'{"object": "page"}', "sign", 200),
        ("queue_unavailable", b'{"object": "whatsapp_business_account"}', "sign", 503),
    ],
)
def test_each_refusal_is_counted_by_reason(
    client: FlaskClient, queue: Queue, reason: str, body: bytes, signature: str | None, status: int
) -> None:
    if reason == "queue_unavailable":
        queue.error = QueueUnavailable("broker down")
    before = scrape(client)
    assert post(client, body, signature) == status
    after = scrape(client)
    rejected = "parley_webhooks_rejected_total"
    assert value(after, rejected, reason=reason) - value(before, rejected, reason=reason) == 1
    others = {k: v for k, v in after.items() if k[0] == rejected and dict(k[1])["reason"] != reason}
    assert others == {k: before[k] for k in others}, "only this reason moved"
    assert value(after, "parley_webhooks_received_total") - value(before, "parley_webhooks_received_total") == 1
    assert value(after, "parley_webhooks_queued_total") == value(before, "parley_webhooks_queued_total")
    assert queue.bodies == []


def test_metrics_page_lists_every_reason_from_the_start(client: FlaskClient) -> None:
    samples = scrape(client)
    reasons = {dict(labels)["reason"] for name, labels in samples if name == "parley_webhooks_rejected_total"}
    assert reasons == {
        "too_large", "missing_signature", "bad_signature", "not_json", "ignored_object", "queue_unavailable",
    }  # fmt: skip
    # The embedded broker is not Redis: no queue-depth probe at all.
    assert not any(name.startswith(("parley_queue_", "parley_broker_up")) for name, _ in samples)
    assert not any(name.endswith("_created") for name, _ in samples)


def test_multiprocess_mode_sums_every_process(tmp_path: Path) -> None:
    """What gunicorn_conf sets up: two forked processes count, one /metrics shows both."""
    script = """
import os
from webhook import metrics
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        metrics.received()
        metrics.rejected("not_json")
        os._exit(0)
    os.waitpid(pid, 0)
print(metrics.exposition("sqla+sqlite://").decode())
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    samples = {
        s.name + json.dumps(s.labels, sort_keys=True): s.value
        for f in text_string_to_metric_families(done.stdout)
        for s in f.samples
    }
    assert samples["parley_webhooks_received_total{}"] == 2
    assert samples['parley_webhooks_rejected_total{"reason": "not_json"}'] == 2
    assert len(list(tmp_path.glob("counter_*.db"))) >= 2  # one file per process


def test_gunicorn_conf_prepares_the_directory_and_forgets_dead_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # restored after the test
    monkeypatch.setenv("PARLEY_ENV", "test")
    monkeypatch.setenv("PARLEY_METRICS_DIR", str(tmp_path))
    monkeypatch.setenv("PARLEY_LOG_FORMAT", "json")
    web = tmp_path / "web"
    web.mkdir()
    (web / "counter_999999.db").write_bytes(b"stale")
    (web / "gauge_livesum_4242.db").write_bytes(b"live")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    # Set at load already: with --preload the master imports the app before on_starting.
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(web)
    assert (web / "counter_999999.db").exists()

    conf["on_starting"](None)
    assert list(web.iterdir()) == []  # the previous run's files are gone
    (web / "gauge_livesum_4242.db").write_bytes(b"live")
    conf["child_exit"](None, type("Worker", (), {"pid": 4242})())
    assert not (web / "gauge_livesum_4242.db").exists()
    handler = conf["logconfig_dict"]["handlers"]["parley"]
    assert handler["class"] == "conversation.logs.ParleyHandler" and handler["fmt"] == "json"


# --- queue depth, with the real Redis --------------------------------------------------


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = [
        q + suffix
        for q in ("inbound", "outbound", "maintenance")
        for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169")
    ]
    client.delete(*keys)
    yield client
    client.delete(*keys)
    client.close()


def test_queue_depth_is_read_from_redis_on_scrape(redis_url: str, redis_client: Any, queue: Queue) -> None:
    redis_client.rpush("inbound", "a", "b", "c")
    redis_client.rpush("outbound\x06\x163", "d")  # a priority-3 message of the outbound queue
    client = make_app(queue, CELERY_BROKER_URL=redis_url).test_client()
    samples = scrape(client)
    assert value(samples, "parley_broker_up") == 1
    assert value(samples, "parley_queue_depth", queue="inbound") == 3
    assert value(samples, "parley_queue_depth", queue="outbound") == 1
    assert value(samples, "parley_queue_depth", queue="maintenance") == 0
    redis_client.lpop("inbound")
    assert value(scrape(client), "parley_queue_depth", queue="inbound") == 2


def test_broker_down_still_answers_the_scrape(queue: Queue) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    client = make_app(queue, CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0").test_client()
    started = time.monotonic()
    samples = scrape(client)
    assert time.monotonic() - started < 3
    assert value(samples, "parley_broker_up") == 0
    assert not any(name == "parley_queue_depth" for name, _ in samples)
    assert value(samples, "parley_webhooks_received_total") >= 0  # the rest of the page is there


# --- the receiver's log lines carry the payload's wamid --------------------------------


def test_receiver_lines_carry_the_first_wamid_and_only_for_that_request(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    from conversation.logs import ContextFilter

    caplog.handler.addFilter(ContextFilter())
    caplog.set_level(logging.INFO, logger="webhook.receiver")
    wamid = f"wamid.{uuid.uuid4().hex}"
    assert post(client, json.dumps(payload(wamid)).encode()) == 200
    assert post(client, b"not json") == 400
    queued = [r for r in caplog.records if r.getMessage().startswith("webhook queued")]
    refused = [r for r in caplog.records if "not UTF-8 JSON" in r.getMessage()]
    assert [r.wamid for r in queued] == [wamid]  # type: ignore[attr-defined]
    assert [r.wamid for r in refused] == [None]  # type: ignore[attr-defined]


# --- the dashboard and the docs name what the code defines -------------------------------


def defined_metrics() -> set[str]:
    import re

    names: set[str] = set()
    for module in ("webhook/metrics.py", "worker/metrics.py", "worker/queue_depth.py"):
        names |= set(re.findall(r'"(parley_[a-z_]+)"', (ROOT / module).read_text()))
    return names


def test_dashboard_and_docs_cover_every_metric_and_name_no_other() -> None:
    import re

    defined = defined_metrics()
    assert {"parley_webhooks_received", "parley_queue_depth", "parley_reply_latency_seconds"} <= defined
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs and all(
        t["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"] for t in p.get("targets", [])
    )
    used = {re.sub(r"_(bucket|count|sum|total)$", "", n) for e in exprs for n in re.findall(r"parley_[a-z_]+", e)}
    assert used <= defined, used - defined
    assert defined <= used, f"no panel for {defined - used}"
    assert any("histogram_quantile(0.99" in e for e in exprs)
    docs = (ROOT / "docs" / "METRICS.md").read_text()
    undocumented = {n for n in defined if n not in docs}
    assert not undocumented, undocumented
