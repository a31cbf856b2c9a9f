"""Shared fixtures: real Postgres and Redis, each test isolated.

Postgres: one fresh database per test session, migrated once with Alembic; each test
runs inside a transaction that is rolled back (savepoints cover the code's own commits).
When a service is missing the test is skipped, except with CI=true, where it fails:
CI must never pass by skipping.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tests.support.database import create_database, drop_database, fresh_database, migrate
from tests.support.services import service_missing

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@contextmanager
def engine_with_shipped_flows() -> Iterator[Engine]:
    """A fresh database holding the flows of ``templates/``, and an engine on it."""
    from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
    from conversation.db import make_engine
    from conversation.service import ConversationService
    from templates.loader import load_directory

    flows = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS).templates
    with fresh_database() as url:
        engine = make_engine(url)
        with Session(engine) as session, session.begin():
            ConversationService(session).upsert_templates(flows.values())
        yield engine
        engine.dispose()


_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    # Registered first, so it runs last: after every stack's own cleanup has stopped it.
    config.add_cleanup(lambda: _discard_stack_workdirs(config))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_FAILED] = session.testsfailed > 0 or exitstatus not in (0, 5)


def _discard_stack_workdirs(config: pytest.Config) -> None:
    """The e2e stacks' temp folders go; after a failure their logs stay, and say where."""
    stack = sys.modules.get("tests.e2e.stack")
    if stack is None:
        return
    for workdir in stack.discard_workdirs(keep_logs=config.stash.get(_FAILED, True)):
        print(f"process logs kept in {workdir}", file=sys.stderr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep the call report on the item, so fixtures can show process logs on failure."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a migrated Postgres database that lives for the whole test session."""
    try:
        url = create_database()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    migrate(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    from conversation.db import make_engine

    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(pg_engine: Engine) -> Iterator[Session]:
    """A session whose every commit is a savepoint inside one rolled-back transaction."""
    conn = pg_engine.connect()
    outer = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        conn.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        service_missing("Redis", exc)
    return REDIS_URL
