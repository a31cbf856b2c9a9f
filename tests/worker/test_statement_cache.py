"""Every statement a worker runs for a message comes out of SQLAlchemy's compiled cache.

A statement SQLAlchemy cannot cache is compiled again on every execution; on the hot path
that cost ~10 % of a worker's busy time before the upserts were rewritten (a dialect
``insert()`` with ON CONFLICT has no cache key in SQLAlchemy 2.0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import CacheStats

from conversation import db
from settings import get_settings
from tests.conftest import engine_with_shipped_flows
from tests.support.graph_stub import start_stub
from tests.support.webhooks import contact, message, webhook
from worker.graph_api import GraphClient
from worker.inbound import process_raw
from worker.sender import drain

pytestmark = pytest.mark.postgres


@pytest.fixture
def flows_engine() -> Iterator[Engine]:
    with engine_with_shipped_flows() as engine, db.using_engine(engine):
        yield engine


def say(phone: str, **said: Any) -> list[str]:
    """One message through the worker's inbound path and its replies through the sender."""
    raw = json.dumps(webhook([message(phone, **said)], [contact(phone)]))
    handed: list[str] = []
    report = process_raw(raw, get_settings(), handed.append)
    assert report.handled == 1
    return handed


def test_a_message_and_its_replies_run_only_cached_statements(flows_engine: Engine) -> None:
    with start_stub() as stub:
        client = GraphClient(stub.url, "test-token", 1.0, 1.0)

        def walk(phone: str) -> None:
            for said in ({"text": "hi"}, {"tap": ("new_order", "New Order")}):
                [user] = say(phone, **said)
                assert drain(user, client, 3).sent == 2  # the read receipt and the reply

        walk("15550004001")  # first use of each statement: compiled once, then cached
        seen: list[tuple[str, str]] = []

        @event.listens_for(flows_engine, "after_cursor_execute")
        def record(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
            seen.append((context.cache_hit, " ".join(statement.split())[:100]))

        walk("15550004002")
        event.remove(flows_engine, "after_cursor_execute", record)
    assert len(seen) >= 10  # two messages' inbound transactions and the sender's
    assert [sql for hit, sql in seen if hit is not CacheStats.CACHE_HIT] == []
