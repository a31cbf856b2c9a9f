"""One running stack per test session (starting gunicorn and workers takes seconds).

The tests that break a stack (stop its Redis, freeze a worker) share a second one,
``fault_stack``: a worker that did not come back can then fail only them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from tests.support.database import fresh_database
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack, require_redis_server, started


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    require_redis_server()
    with fresh_database() as url, started(Stack, url, GraphStub()) as running:
        yield running


# /readyz calls a queue stalled after this many seconds on the fault stack.
FAULT_STALL_SECONDS = 3


@dataclass
class FaultStack(Stack):
    def env(self) -> dict[str, str]:
        return {**super().env(), "PARLEY_QUEUE_STALL_SECONDS": str(FAULT_STALL_SECONDS)}


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[Stack]:
    require_redis_server()
    with fresh_database() as url, started(FaultStack, url, GraphStub()) as running:
        yield running


@pytest.fixture(scope="module")
def db(stack: Stack) -> Iterator[Engine]:
    """An engine on the stack's database, to look at what the pipeline wrote."""
    engine = create_engine(stack.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


@pytest.fixture
def graph(stack: Stack) -> GraphStub:
    """The stub, emptied for this test."""
    stack.stub.reset()
    return stack.stub


@pytest.fixture(autouse=True)
def _show_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "stack" in request.fixturenames:
        print(request.getfixturevalue("stack").logs())
