"""One running stack per test session (starting gunicorn and workers takes seconds)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import create_database, drop_database, migrate, service_missing
from tests.e2e.stack import Stack, new_workdir
from tests.support.graph_stub import GraphStub


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    if shutil.which("redis-server") is None:
        service_missing("redis-server (binary)", FileNotFoundError("redis-server"))
    try:
        url = create_database()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    migrate(url)
    stub = GraphStub().start()
    running = Stack(database_url=url, stub=stub, workdir=new_workdir())
    try:
        running.start()
        yield running
    finally:
        running.stop_all()
        stub.stop()
        drop_database(url)


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
