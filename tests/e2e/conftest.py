"""One running stack per test session (starting gunicorn and workers takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.database import fresh_database
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack, require_redis_server, started


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    require_redis_server()
    with fresh_database() as url, started(Stack, url, GraphStub()) as running:
        yield running


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
