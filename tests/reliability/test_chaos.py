"""The full fault suite (``make chaos``; marked ``chaos``, not in the default run).

Graceful drain (and SIGTERM to the whole process group), Redis killed, Postgres restarted, bursts faster than replies, two Beats
over expiring conversations, tasks outliving the visibility timeout, poison messages.
Together with test_quick.py and test_bad_input_http.py it fills the table that
``make chaos`` prints and writes into docs/RELIABILITY.md.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.reliability.audit import Tally
from tests.reliability.customers import burst, coffee, greeter, mixed, poisoned_coffee
from tests.reliability.harness import (
    PG_VERSION,
    ChaosStack,
    Scenario,
    assert_clean,
    fault_env,
    restart_postgres,
    run_scenario,
)
from tests.support.database import ADMIN_URL
from tests.support.services import service_missing

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def test_3_sigterm_all_workers_under_load_then_restart(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    chaos.use_faults(None)
    chaos.stub.reset()
    chaos.stub.configure(latency=0.1)  # keep sends in flight when the signal comes
    marks = chaos.worker_log_marks()
    drained: dict[str, float] = {}

    def drain_and_restart(stack: ChaosStack) -> None:
        time.sleep(4)
        started = time.monotonic()
        stack.stop_workers(signal.SIGTERM)  # warm shutdown: running tasks finish first
        drained["seconds"] = time.monotonic() - started
        time.sleep(3)  # webhooks keep arriving and queue up meanwhile
        stack.start_workers(stack.faults)

    customers = [*mixed(14), burst("apart"), burst("together")]
    scenario = Scenario(
        "3 SIGTERM + restart", customers, faults="SIGTERM every worker mid-load", disrupt=drain_and_restart
    )
    tally, meta = run_scenario(chaos, scenario)
    record(tally)
    log = chaos.worker_logs_since(marks)
    assert "WorkerLostError" not in log, "a task was cut off instead of drained"
    assert "Warm shutdown" in log and drained["seconds"] < 60, log[-2000:]
    tally.faults += f" (drained in {drained['seconds']:.1f} s)"
    assert_clean(tally, meta)


def test_3b_sigterm_to_every_process_of_the_workers(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    """SIGTERM to the whole process group (systemd's default KillMode) also reaches the pool
    processes, which die mid-task: nothing is lost, but a task cut after its send repeats it."""
    chaos.use_faults(None)
    chaos.stub.reset()
    chaos.stub.configure(latency=0.1)
    marks = chaos.worker_log_marks()

    def terminate_group(stack: ChaosStack) -> None:
        time.sleep(4)
        stack.stop_workers(signal.SIGTERM, group=True)
        time.sleep(3)
        stack.start_workers(stack.faults)

    customers = [*mixed(14), burst("apart"), burst("together")]
    scenario = Scenario(
        "3b SIGTERM to the group", customers, faults="SIGTERM to every worker process", disrupt=terminate_group
    )
    tally, meta = run_scenario(chaos, scenario)
    cut = chaos.worker_logs_since(marks).count("WorkerLostError")
    tally.faults += f" ({cut} tasks cut)"
    record(tally)
    assert_clean(tally, meta, window_at_most=cut)


def test_4_redis_killed_and_restarted_under_load(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    chaos.use_faults(None)
    chaos.stub.reset()

    # Customers sent a turn or two before the first outage; half of them post their next
    # turn while Redis is down the first time, the other half during the second outage.
    # (On a fast machine, the whole script otherwise finished before the first kill.)
    outages = [threading.Event(), threading.Event()]
    customers = [*mixed(14), burst("apart")]
    for n, customer in enumerate(customers[:14]):
        customer.turns[1 + n % 2].after = outages[n % 2]

    def kill_twice(stack: ChaosStack) -> None:
        for pause, outage in zip((3, 6), outages, strict=True):
            time.sleep(pause)
            stack.kill_redis()  # SIGKILL: only what AOF (fsync always) holds survives
            outage.set()
            time.sleep(4)
            stack.start_redis()

    scenario = Scenario(
        "4 Redis SIGKILL x2", customers, faults="Redis SIGKILLed twice, AOF restart", disrupt=kill_twice
    )
    tally, meta = run_scenario(chaos, scenario)
    record(tally)
    tally.faults += f" ({meta.statuses[503]} answers 503)"
    assert meta.statuses[503] > 0, "the receiver must have answered 503 while Redis was down"
    assert_clean(tally, meta)


def test_5_postgres_restarted_immediate_under_load(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    if not PG_VERSION or shutil.which("pg_ctlcluster") is None:
        service_missing("pg_ctlcluster (to restart Postgres)", FileNotFoundError("pg_ctlcluster"))
    local = make_url(ADMIN_URL)
    if (local.host, local.port or 5432) not in {("127.0.0.1", 5432), ("localhost", 5432)}:
        service_missing("the machine's own Postgres (the tests use another server)", ValueError(str(local.host)))
    chaos.use_faults(None)
    chaos.stub.reset()
    chaos.stub.configure(latency=0.05)

    def restart_twice(stack: ChaosStack) -> None:
        for pause in (3, 8):
            time.sleep(pause)
            restart_postgres()

    customers = [*mixed(14), burst("apart")]
    scenario = Scenario(
        "5 Postgres restart x2", customers, faults="immediate-mode restart twice", disrupt=restart_twice
    )
    marks = chaos.worker_log_marks()
    tally, meta = run_scenario(chaos, scenario)
    log = chaos.worker_logs_since(marks)
    hits = log.count("OperationalError") + log.count("database unavailable")
    tally.faults += f" ({hits} database errors met)"
    db = chaos.db()
    try:
        with db.connect() as conn:
            stale = conn.execute(
                text(
                    "select count(*) from pg_stat_activity where datname = current_database()"
                    " and state like 'idle in transaction%' and now() - state_change > interval '5 seconds'"
                )
            ).scalar_one()
            waiting = conn.execute(
                text(
                    "select count(*) from pg_locks l join pg_database d on d.oid = l.database"
                    " where d.datname = current_database() and not l.granted"
                )
            ).scalar_one()
            leases = conn.execute(
                text("select count(*) from contacts where user_key = any(:k) and sender_lease_until > now()"),
                {"k": [c.key for c in customers]},
            ).scalar_one()
    finally:
        db.dispose()
    tally.stuck += stale + waiting + leases
    if stale + waiting + leases:
        tally.note(f"after the restarts: {stale} idle-in-transaction, {waiting} waiting locks, {leases} leases held")
    record(tally)
    # The wamid of a send Graph accepted is stored with retries through the restart; a
    # duplicate would mean the outage outlasted that budget (counted, not hidden).
    assert hits > 0, "the restarts never reached a worker"
    assert_clean(tally, meta, window_at_most=2)


def test_7_bursts_faster_than_replies_go_out(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    chaos.use_faults(None)
    chaos.stub.reset()
    chaos.stub.configure(latency=0.25)  # Graph slower than the customers
    # Half of them send a second burst as soon as the first is handled, replies still queued.
    customers = [burst(mode, bursts=1 + i % 2) for i, mode in enumerate(["apart", "together"] * 6)]
    scenario = Scenario("7 bursts of 10", customers, faults="10 messages at once, Graph 250 ms/call")
    tally, meta = run_scenario(chaos, scenario)
    record(tally)
    assert tally.messages >= 180
    assert_clean(tally, meta)


def test_8_two_beats_while_conversations_expire(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    chaos.use_faults(None)
    chaos.stub.reset()
    cue = threading.Event()
    silent = [greeter() for _ in range(8)]
    writers = [greeter(writes_again=cue) for _ in range(8)]
    live = [coffee() for _ in range(8)]
    expiring = [c.key for c in [*silent, *writers]]
    ids: dict[str, str] = {}

    def expire_some(stack: ChaosStack) -> None:
        db = stack.db()
        try:
            stack.start_second_beat()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # every greeter has a live conversation
                with db.connect() as conn:
                    rows = conn.execute(
                        text("select user_key, id from conversation_state where user_key = any(:k)"), {"k": expiring}
                    ).all()
                if len(rows) == len(expiring):
                    break
                time.sleep(0.2)
            with db.begin() as conn:  # as if they had been quiet past their expiry
                conn.execute(
                    text(
                        "update conversation_state set expires_at = now() - interval '1 second'"
                        " where user_key = any(:k)"
                    ),
                    {"k": expiring},
                )
            ids.update({k: str(i) for k, i in rows})
            time.sleep(0.7)  # the writers race the two Beats' cleanups
            cue.set()
        finally:
            db.dispose()

    scenario = Scenario(
        "8 two Beats + expiry",
        [*silent, *writers, *live],
        faults="2 Beats, expire every 1 s, 16 expiring",
        disrupt=expire_some,
    )
    try:
        tally, meta = run_scenario(chaos, scenario)
    finally:
        chaos.stop("beat2")
    db = chaos.db()
    try:
        with db.connect() as conn:
            expired = dict(
                conn.execute(
                    text(
                        "select user_key, count(*) from conversation_events where event = 'expired'"
                        " and user_key = any(:k) group by user_key"
                    ),
                    {"k": [c.key for c in scenario.customers]},
                ).all()
            )
            overdue = conn.execute(
                text("select count(*) from conversation_state where expires_at <= now()")
            ).scalar_one()
    finally:
        db.dispose()
    twice = {k: n for k, n in expired.items() if n != 1}
    missed = [k for k in expiring if k not in expired]
    wrongly = [c.key for c in live if c.key in expired]
    tally.duplicated += sum(n - 1 for n in twice.values())
    tally.lost += len(missed) + len(wrongly)
    tally.stuck += overdue
    for what, found in (("expired twice", twice), ("never expired", missed), ("live but expired", wrongly)):
        if found:
            tally.note(f"{what}: {found}")
    record(tally)
    assert len(ids) == len(expiring), "the scenario never saw every expiring conversation"
    assert_clean(tally, meta)


def test_9_task_outlives_the_visibility_timeout(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    chaos.stub.reset()
    marks = chaos.worker_log_marks()
    chaos.use_faults(fault_env("before_commit:0.3,after_send:0.3", "sleep:6", for_seconds=30))
    restored: list[int] = []

    def lapse(stack: ChaosStack) -> None:
        for _ in range(12):
            time.sleep(2.5)
            restored.append(stack.force_redelivery())

    scenario = Scenario(
        "9 visibility timeout", mixed(10), faults="tasks stall 6 s; Redis redelivers them", disrupt=lapse
    )
    tally, meta = run_scenario(chaos, scenario)
    log = chaos.worker_logs_since(marks)
    stalls = log.count("parley-fault: sleep at")
    tally.faults += f" ({sum(restored)} redelivered, {stalls} stalls)"
    record(tally)
    chaos.use_faults(None)
    assert sum(restored) > 0 and stalls > 0, "no task was ever handed to a second worker"
    assert_clean(tally, meta)  # a redelivered task never sends twice: no window here either


def test_poison_messages_never_block_a_customer(chaos: ChaosStack, record: Callable[[Tally], None]) -> None:
    chaos.stub.reset()
    marks = chaos.worker_log_marks()
    chaos.use_faults(fault_env("before_commit", "raise", match="POISON"))
    customers = [poisoned_coffee("POISON") for _ in range(6)] + mixed(6)
    scenario = Scenario("poison messages", customers, faults="1 message in 6 flows fails every time")
    tally, meta = run_scenario(chaos, scenario)
    record(tally)
    log = chaos.worker_logs_since(marks)
    chaos.use_faults(None)
    assert log.count("parley-fault: raise at before_commit") == 6 * 3, "three tries per poison message"
    assert_clean(tally, meta)
