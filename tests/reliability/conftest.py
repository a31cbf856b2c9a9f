"""The fault suite's stack (one per session) and its results table.

Every scenario records a :class:`Tally`; the table is printed at the end of the run, and
written into docs/RELIABILITY.md when ``PARLEY_CHAOS_DOC`` names that file (``make chaos``).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.audit import Tally, table
from tests.reliability.harness import ChaosStack, ensure_postgres_up
from tests.support.database import fresh_database
from tests.support.graph_stub import GraphStub
from tests.support.stack import require_redis_server, started

TALLIES: list[Tally] = []
STARTED = time.monotonic()
BEGIN, END = "<!-- chaos-figures:begin -->", "<!-- chaos-figures:end -->"


@pytest.fixture(scope="session")
def chaos() -> Iterator[ChaosStack]:
    require_redis_server()
    with fresh_database() as url:
        try:
            # A hung Graph request is held this long (the sender gives up after its 2 s read timeout).
            with started(ChaosStack, url, GraphStub(hang_seconds=3)) as stack:
                yield stack  # type: ignore[misc]
        finally:
            ensure_postgres_up()  # whatever a scenario did to the machine's Postgres


@pytest.fixture
def record() -> Callable[[Tally], None]:
    """Add a scenario's figures to the session's table."""
    return TALLIES.append


@pytest.fixture(autouse=True)
def _show_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "chaos" in request.fixturenames:
        print(request.getfixturevalue("chaos").logs())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLIES:
        return
    rendered = table(TALLIES)
    terminalreporter.write_sep("=", "reliability: customers' messages under faults")
    terminalreporter.write_line(rendered)
    for tally in TALLIES:
        for note in tally.notes[:8]:
            terminalreporter.write_line(f"  {tally.scenario}: {note}")
    doc = os.environ.get("PARLEY_CHAOS_DOC")
    if doc:
        write_figures(Path(doc), rendered)
        terminalreporter.write_line(f"figures written to {doc}")


def write_figures(path: Path, rendered: str) -> None:
    """Replace the figures between the markers of ``path`` with this run's table."""
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path} has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cores = os.cpu_count() or "?"
    stamp = (
        f"Last run: {when}, {platform.system()} on {cores} cores, whole suite"
        f" {time.monotonic() - STARTED:.0f} s (`make chaos`)."
    )
    path.write_text(f"{head}{BEGIN}\n{stamp}\n\n{rendered}\n{END}{tail}", encoding="utf-8")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The chaos suite runs only when asked for by name (``-m`` mentioning chaos, as ``make
    chaos`` does): a plain ``-m e2e`` or ``-m postgres`` must not restart the machine's Postgres."""
    if "chaos" in (config.option.markexpr or ""):
        return
    chaos = [item for item in items if item.get_closest_marker("chaos")]
    if chaos:
        config.hook.pytest_deselected(items=chaos)
        items[:] = [item for item in items if not item.get_closest_marker("chaos")]
