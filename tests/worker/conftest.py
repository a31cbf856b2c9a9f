"""Worker code opens its own sessions and commits: give it a database of its own; the
sender tests share a stub Graph API and a client on it (test_graph_api.py has its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from conversation import db
from tests.support.database import fresh_database
from tests.support.graph_stub import GraphStub
from worker.graph_api import GraphClient


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """A fresh migrated Postgres database that ``session_scope()`` uses for this module."""
    with fresh_database() as url:
        eng = db.make_engine(url)
        with db.using_engine(eng):  # later tests get the engine they had
            yield eng
        eng.dispose()


@pytest.fixture
def stub() -> Iterator[GraphStub]:
    s = GraphStub().start()
    yield s
    s.stop()


@pytest.fixture
def client(stub: GraphStub) -> GraphClient:
    return GraphClient(stub.url, "test-token", 1.0, 1.0)
