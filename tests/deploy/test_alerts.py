"""deploy/prometheus-alerts.yml: well-formed rules, on metrics the workers really serve.

No Prometheus runs here, so the rules are checked against the exporter itself: every
metric an expression names comes out of a real scrape of ``QueueDepthCollector`` (real
Redis), and the stall alert's threshold separates a message that has waited too long
from one that has not, as measured by that scrape.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from settings import load_settings
from worker.celery_app import PUBLISHED_HEADER
from worker.queue_depth import QueueDepthCollector

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus-alerts.yml"
METRIC = re.compile(r"\b(parley_[a-z_]+)\b")
DURATION = re.compile(r"^\d+[smh]$")


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def rule(name: str) -> dict[str, Any]:
    [found] = [r for r in rules() if r["alert"] == name]
    return found


@pytest.fixture
def queue(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(redis_url)
    name = f"alerts-test-{uuid.uuid4().hex[:8]}"
    yield client, name
    client.delete(name)
    client.close()


def scrape(redis_url: str, queues: list[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in QueueDepthCollector(redis_url, queues).collect():
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def push_message(client: redis.Redis, queue: str, published: float) -> None:
    """A message shaped as kombu's Redis transport stores it, stamped as parley stamps it."""
    message = {"body": "", "headers": {PUBLISHED_HEADER: published, "task": "parley.test"}, "properties": {}}
    client.lpush(queue, json.dumps(message))


def test_rules_are_well_formed() -> None:
    assert {r["alert"] for r in rules()} >= {"ParleyQueueNotConsumed", "ParleyBrokerDown"}
    for r in rules():
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert METRIC.search(r["expr"]), f"{r['alert']} watches no parley metric"
        assert DURATION.match(r["for"]), r["alert"]
        assert r["labels"]["severity"] in {"page", "ticket"}, r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]


def test_runbooks_the_alerts_name_exist() -> None:
    operations = (ROOT / "docs" / "OPERATIONS.md").read_text()
    headings = set(re.findall(r"^#+ (.+)$", operations, flags=re.M))
    for r in rules():
        for cited in re.findall(r'docs/OPERATIONS\.md, "([^"]+)"', r["annotations"]["description"]):
            assert cited in headings, f"{r['alert']} cites a runbook that is not there: {cited}"


def test_every_metric_an_alert_names_is_served(redis_url: str, queue: tuple[redis.Redis, str]) -> None:
    client, name = queue
    push_message(client, name, time.time())
    served = {metric for metric, _ in scrape(redis_url, [name])}
    for r in rules():
        missing = set(METRIC.findall(r["expr"])) - served
        assert not missing, f"{r['alert']} watches {missing}, which no worker serves"


def test_the_stall_alert_fires_on_an_old_message_and_not_a_fresh_one(
    redis_url: str, queue: tuple[redis.Redis, str]
) -> None:
    expr = rule("ParleyQueueNotConsumed")["expr"]
    threshold = float(re.fullmatch(r"max by \(queue\) \(parley_queue_oldest_age_seconds\) > (\d+)", expr)[1])
    # The alert and the receiver's /readyz mean the same thing by "stalled".
    assert threshold == load_settings({}).queue_stall_seconds
    client, name = queue
    key = ("parley_queue_oldest_age_seconds", (("queue", name),))

    assert scrape(redis_url, [name])[key] == 0  # empty queue
    push_message(client, name, time.time() - 5)  # the newest, pushed on the left
    assert scrape(redis_url, [name])[key] < threshold
    client.delete(name)
    push_message(client, name, time.time() - threshold - 30)  # the oldest, popped next
    push_message(client, name, time.time())
    assert scrape(redis_url, [name])[key] > threshold
