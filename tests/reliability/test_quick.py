"""The quick fault scenarios, run by ``make test`` (CI): redeliveries, Graph failures, SIGKILLs.

Each drives scripted customers through the real stack while one kind of fault is
injected, then counts from the stub's log and the database. All counts must be zero,
except window duplicates where a scenario provokes the documented window (a reply
Graph accepted, or may have, whose wamid was never stored). The SIGKILL scenario comes
last: a sender killed after a send holds its customer's lease for a minute, and the
other tests need not restart the workers after it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.reliability.audit import Tally
from tests.reliability.customers import burst, mixed
from tests.reliability.harness import ChaosStack, Scenario, assert_clean, fault_env, run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def test_1_every_payload_delivered_three_times(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    chaos.use_faults(None)
    chaos.stub.reset()
    sequential = mixed(4)
    concurrent = mixed(4)
    bursts = [burst("together"), burst("apart")]
    for c in sequential:
        c.copies = 3
    for c in [*concurrent, *bursts]:
        c.copies, c.copies_at_once = 3, True
    scenario = Scenario("1 redelivery", [*sequential, *concurrent, *bursts], faults="each POST 3x, in turn / at once")
    tally, meta = run_scenario(chaos, scenario)
    record(tally)
    posts = sum(c.copies * (1 if t.mode == "together" else len(t.msgs)) for c in scenario.customers for t in c.turns)
    assert meta.statuses[200] == posts, "every copy of every POST was acknowledged"
    assert_clean(tally, meta)


def test_6_graph_api_errors_timeouts_and_hangs(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    chaos.use_faults(None)
    customers = mixed(9)
    stub = chaos.stub
    stub.reset()
    unknown_outcome = 0
    for i, c in enumerate(customers):
        who = {"recipient": c.recipient, "kind": "message"}
        stub.push(status=500, **who)
        stub.push_error(code=130429, http_status=429, **who)
        if i % 3 == 0:
            stub.push(status=502, body="Bad gateway", **who)
        if i % 3 == 1:
            stub.push(delay=3.0, **who)  # accepted after the sender's 2 s read timeout
            unknown_outcome += 1
        if i % 4 == 0:
            stub.push(hang=True, **who)  # accepted, then the connection hangs
            unknown_outcome += 1
        if i % 4 == 2:
            stub.push(drop=True, **who)  # connection closed without an answer
            unknown_outcome += 1
        if i % 6 == 5:
            stub.push_error(code=131056, http_status=400, **who)  # pair rate limit
    scripted = stub.pending_scripts()
    scenario = Scenario(
        "6 Graph API failures",
        customers,
        faults="500, 502, 429/130429, 131056, timeout, hang, drop",
    )
    tally, meta = run_scenario(chaos, scenario)
    record(tally)
    assert stub.pending_scripts() == 0, f"{stub.pending_scripts()} of {scripted} scripted failures never hit"
    # A timeout, hang or drop leaves the outcome unknown: the retry may duplicate, at most once each.
    assert_clean(tally, meta, window_at_most=unknown_outcome)


def test_2_workers_killed_before_commit_after_commit_after_send(
    chaos: ChaosStack, record: Callable[[Tally], None]
) -> None:
    chaos.stub.reset()
    marks = chaos.worker_log_marks()
    chaos.use_faults(fault_env("before_commit:0.25,after_commit:0.25,after_send:0.2", "kill", for_seconds=20))
    scenario = Scenario("2 SIGKILL mid-task", mixed(10), faults="SIGKILL before/after commit, after send")
    tally, meta = run_scenario(chaos, scenario)
    record(tally)
    log = chaos.worker_logs_since(marks)
    kills = {p: log.count(f"parley-fault: kill at {p}") for p in ("before_commit", "after_commit", "after_send")}
    tally.faults += " (" + ", ".join(f"{p} {n}" for p, n in kills.items()) + ")"
    assert all(kills.values()), f"every kill point must have fired at least once: {kills}"
    # Each kill after a send costs at most one duplicate: the documented window.
    assert_clean(tally, meta, window_at_most=kills["after_send"])
