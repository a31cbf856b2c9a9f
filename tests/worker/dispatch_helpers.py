"""Shared by tests/worker/test_dispatch.py and tests/webhook/test_publishing.py: a private
redis-server, the one Celery app pointed at a broker for one test, and reading the queue."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

import settings as settings_module
from tests.support.stack import Stack, new_workdir, require_redis_server
from worker.celery_app import INBOUND_QUEUE


@contextmanager
def private_redis() -> Iterator[Stack]:
    """A redis-server of its own (``.broker_url``; ``stop_redis``/``start_redis``), so stopping
    it or consuming from it never touches the machine's Redis or another test session."""
    require_redis_server()
    stack = Stack(database_url="", stub=None, workdir=new_workdir())
    stack.start_redis()
    try:
        yield stack
    finally:
        stack.stop_all()


@contextmanager
def celery_pointer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``point(url)`` puts the one Celery app (and settings) on ``url``; monkeypatch puts
    them back after the test. worker.dispatch follows the app's broker URL by itself.

    Celery publishes through the producer pool it keeps on ``app.amqp``, made for the broker
    URL of its first use: each ``point`` gives the app a new ``amqp`` (the original one comes
    back with the rest), so the next publish makes a pool for ``url``. The app's connection
    pool (``app.pool``) is taken on its own broker first and kept: the producer pool reads
    only its size limit, and it must not outlive the test on another URL.

    The pools made meanwhile are left open: kombu keeps producer pools in a registry keyed
    by broker URL, and a later test on the same URL would get a closed one back."""
    from worker.celery_app import app as celery

    assert celery.pool is not None  # made now, on the app's own broker URL

    def point(url: str) -> None:
        monkeypatch.setenv("CELERY_BROKER_URL", url)
        monkeypatch.setattr(celery.conf, "broker_url", url)
        monkeypatch.delattr(celery, "amqp")  # a cached property: the next use makes a new one
        settings_module.get_settings.cache_clear()

    try:
        yield point
    finally:
        settings_module.get_settings.cache_clear()


def queued_messages(client: redis.Redis) -> list[dict[str, Any]]:
    """Every message on the inbound queue, oldest first (the order a worker takes them)."""
    return [json.loads(m) for m in reversed(client.lrange(INBOUND_QUEUE, 0, -1))]


def task_args(envelope: dict[str, Any]) -> list[Any]:
    """The positional arguments of a Celery (protocol 2) task message in kombu's Redis envelope."""
    assert envelope["properties"]["body_encoding"] == "base64"
    args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return args
