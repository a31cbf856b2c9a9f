"""Worker processes run without a ping per pooled checkout: a dead connection must still
cost only one retry, never a message."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine

from conversation import db
from conversation.db import is_transient
from conversation.models import InboundMessage
from settings import get_settings
from tests.support.database import ADMIN_URL, fresh_database
from tests.support.webhooks import contact, message, webhook
from worker.celery_app import configure_worker_connections
from worker.inbound import process_raw

pytestmark = pytest.mark.postgres


@pytest.fixture
def worker_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The engine a worker process builds, on a database of its own."""
    with fresh_database() as url:
        monkeypatch.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        with db.using_engine():  # as a new process: no engine yet, default options; disposed after
            configure_worker_connections()
            yield db.get_engine()
        get_settings.cache_clear()


def kill_backends(database: str) -> None:
    """What a Postgres restart does to every open connection."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": database},
        )
    admin.dispose()


def test_worker_engines_do_not_ping_on_checkout(worker_engine: Engine) -> None:
    with worker_engine.connect() as conn:  # one pooled connection
        conn.execute(text("SELECT 1"))
    kill_backends(worker_engine.url.database)
    # A ping on checkout would find the dead connection and replace it unseen; without one
    # the first statement on it fails, as a transient error.
    with pytest.raises(Exception) as failure, worker_engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert is_transient(failure.value)


def test_a_connection_killed_under_the_pool_costs_one_transient_failure_then_works(worker_engine: Engine) -> None:
    settings = get_settings()
    with db.session_scope() as s:  # a pooled connection, as after earlier tasks
        s.execute(text("SELECT 1"))
    kill_backends(worker_engine.url.database)
    raw = json.dumps(webhook([message("15550003333", "hi", wamid="wamid.RESTART1")], [contact("15550003333")]))
    with pytest.raises(Exception) as failure:
        process_raw(raw, settings, lambda _user: None)
    assert is_transient(failure.value)  # the task retries the payload: nothing is dead-lettered
    report = process_raw(raw, settings, lambda _user: None)
    assert report.handled == 1
    with db.session_scope() as s:
        assert s.scalar(select(InboundMessage.outcome).where(InboundMessage.wamid == "wamid.RESTART1")) != "failed"
