"""Metrics and logs of the running stack: counters move, one conversation can be followed.

The receiver runs under ``gunicorn -c gunicorn.conf.py`` with two workers, so
its ``/metrics`` only adds up when multiprocess mode works; each Celery worker serves
its own port. Logs are JSON lines (PARLEY_LOG_FORMAT=json in tests/support/stack.py).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_pipeline import new_phone, say, wait_replies
from tests.support.graph_stub import GraphStub
from tests.support.ports import free_port
from tests.support.stack import BIN, Stack, wait_until
from tests.support.webhooks import APP_SECRET, contact, message, webhook
from webhook.signature import sign

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

Samples = Counter[tuple[str, frozenset[tuple[str, str]]]]


def scrape(url: str) -> Samples:
    response = requests.get(url, timeout=5)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = Counter()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] += sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def worker_samples(stack: Stack) -> Samples:
    total: Samples = Counter()
    for port in stack.worker_metrics_ports:
        total.update(scrape(f"http://127.0.0.1:{port}/metrics"))
    return total


def json_lines(stack: Stack, *names: str) -> list[dict[str, Any]]:
    """Log records of the named processes; every line that looks like JSON must be JSON."""
    records = []
    for name in names:
        for line in (stack.workdir / f"{name}.log").read_text(errors="replace").splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
    return records


def test_metrics_move_and_logs_follow_one_conversation(stack: Stack, graph: GraphStub) -> None:
    # The workers' exporters start on worker_ready: give a fresh stack a moment.
    wait_until(lambda: _answers(stack), 30, "worker metrics ports")
    web_before, workers_before = scrape(f"{stack.base_url}/metrics"), worker_samples(stack)

    user = new_phone()
    secret = f"my card is 4111-{uuid.uuid4().hex[:8]}"
    hi = say(stack, user, "hi")
    wait_replies(graph, user, 1)
    tap = say(stack, user, tap=("new_order", "New Order"))
    wait_replies(graph, user, 2)
    wrong = say(stack, user, secret)  # not an option of the list: an invalid answer
    wait_replies(graph, user, 3)
    bsuid = f"US.{uuid.uuid4().int % 10**19:019d}"
    assert stack.post(webhook([message("", "hi")], [contact("", bsuid=bsuid)])).status_code == 200
    wait_replies(graph, bsuid, 1)
    assert stack.post(b'{"object": "whatsapp_business_account"}', signature="sha256=" + "0" * 64).status_code == 403

    # Receiver: five POSTs, four queued, one bad signature; the queue depth is read from Redis.
    web = scrape(f"{stack.base_url}/metrics")
    assert value(web, "parley_webhooks_received_total") - value(web_before, "parley_webhooks_received_total") == 5
    assert value(web, "parley_webhooks_queued_total") - value(web_before, "parley_webhooks_queued_total") == 4
    bad = {"reason": "bad_signature"}
    assert (
        value(web, "parley_webhooks_rejected_total", **bad) - value(web_before, "parley_webhooks_rejected_total", **bad)
        == 1
    )
    assert (
        value(web, "parley_webhook_request_duration_seconds_count")
        - value(web_before, "parley_webhook_request_duration_seconds_count")
        == 5
    )
    assert value(web, "parley_broker_up") == 1
    assert {dict(ls)["queue"] for n, ls in web if n == "parley_queue_depth"} == {"inbound", "outbound", "maintenance"}

    # Workers (both ports summed): items, engine outcomes, sends, latencies.
    def moved(name: str, **labels: str) -> float:
        return value(worker_samples(stack), name, **labels) - value(workers_before, name, **labels)

    expected = [
        ("parley_inbound_items_total", {"type": "text", "outcome": "handled"}, 3),
        ("parley_inbound_items_total", {"type": "interactive", "outcome": "handled"}, 1),
        ("parley_engine_outcomes_total", {"outcome": "started"}, 2),
        ("parley_engine_outcomes_total", {"outcome": "switched"}, 1),  # main_menu → new_order
        ("parley_engine_outcomes_total", {"outcome": "invalid"}, 1),
        ("parley_outbound_sends_total", {"kind": "message", "status": "accepted"}, 4),
        ("parley_reply_latency_seconds_count", {}, 4),
        ("parley_inbound_lag_seconds_count", {}, 4),
        ("parley_task_duration_seconds_count", {"task": "parley.inbound.process_payload", "state": "SUCCESS"}, 4),
        ("parley_task_duration_seconds_count", {"task": "parley.outbox.deliver", "state": "SUCCESS"}, 1),
    ]
    for name, labels, at_least in expected:
        wait_until(lambda n=name, ls=labels, k=at_least: moved(n, **ls) >= k, 10, f"{name}{labels} +{at_least}")

    # Logs: each customer message can be followed by its wamid, receiver → worker → sender.
    def events_for(wamid: str) -> Counter[str]:
        return Counter(
            r["event"].split(" (")[0] for r in json_lines(stack, "web", "worker1", "worker2") if r.get("wamid") == wamid
        )

    for item in (hi, tap, wrong):
        wait_until(lambda w=item["id"]: events_for(w)["graph accepted"] >= 1, 10, "graph accepted logged")
        events = events_for(item["id"])
        assert events["webhook queued"] == 1, events
        assert events["inbound message handled"] == 1, events
    worker_records = json_lines(stack, "worker1", "worker2")
    [handled] = [r for r in worker_records if r.get("wamid") == hi["id"] and r["event"] == "inbound message handled"]
    assert handled["level"] == "INFO" and handled["outcome"] == "started" and handled["type"] == "text"
    assert handled["user_key"] == "***" + user[-4:]
    assert any(r.get("user_key") == f"US.***{bsuid[-4:]}" for r in worker_records)

    # Nothing in clear: no phone number, no BSUID, no message body, in any process's log.
    every_log = "\n".join(p.read_text(errors="replace") for p in stack.workdir.glob("*.log"))
    assert user not in every_log
    assert bsuid not in every_log and bsuid.split(".")[1] not in every_log
    assert secret not in every_log and secret.split("-")[1] not in every_log
    # The receiver's log is JSON through and through (gunicorn's own lines included).
    web_lines = [line for line in (stack.workdir / "web.log").read_text().splitlines() if line.strip()]
    assert web_lines and all(isinstance(json.loads(line), dict) for line in web_lines)


def _answers(stack: Stack) -> bool:
    try:
        for port in stack.worker_metrics_ports:
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).raise_for_status()
    except requests.RequestException:
        return False
    return True


def test_plain_gunicorn_command_still_serves_metrics(stack: Stack) -> None:
    """DESIGN's ``gunicorn "webhook:create_app()"`` (no config file): per-process metrics."""
    port = free_port()
    stack.spawn(
        "plain-web",
        [str(BIN / "gunicorn"), "webhook:create_app()", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{base}/healthz"), 30, "plain gunicorn")
        before = scrape(f"{base}/metrics")
        user = new_phone()
        body = json.dumps(webhook([message(user, "hi")], [contact(user)])).encode()
        assert (
            requests.post(
                f"{base}/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, APP_SECRET)}, timeout=10
            ).status_code
            == 200
        )
        after = scrape(f"{base}/metrics")
        assert value(after, "parley_webhooks_queued_total") - value(before, "parley_webhooks_queued_total") == 1
        assert value(after, "parley_broker_up") == 1
    finally:
        stack.stop("plain-web")


def _get(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
