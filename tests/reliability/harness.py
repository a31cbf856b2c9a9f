"""The fault harness: the real stack (tests/support/stack.py) plus ways to break it, and a driver.

:class:`ChaosStack` runs gunicorn, Celery workers, Beat, a private Redis that persists
every write (AOF, fsync always), the stub Graph API and a fresh Postgres database, and
can restart the workers with a fault configured (``worker/faults.py``), SIGTERM or
SIGKILL them, kill Redis, restart Postgres, start a second Beat, or make Redis hand
running tasks to another worker (a lapsed visibility timeout).

:func:`run_scenario` drives scripted customers (``customers.py``) through the receiver
with signed webhooks, like Meta: a POST that does not get 200 is retried. A customer
sends their next turn once the previous one is handled (committed), not once its
replies are out, so replies queue up behind a slow Graph API. Afterwards it waits for
the system to settle and audits the stub's log and the database (``audit.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from tests.reliability.audit import Tally, audit
from tests.reliability.customers import Customer, Msg
from tests.support.stack import Stack, node_name, wait_until, worker_command

# Two prefork workers on every queue: the fault points kill one pool child, which the pool
# replaces, so each kill costs at most the one send it interrupts. (A threads sender dies
# whole: every send in flight is in the window and nothing restarts it here; see
# docs/RELIABILITY.md.)
WORKER_POOLS = (("-c", "2", "-Q", "inbound,outbound,maintenance"),) * 2

PG_VERSION = os.environ.get("PARLEY_CHAOS_PG_VERSION") or (
    sorted(os.listdir("/etc/postgresql"))[0] if os.path.isdir("/etc/postgresql") else ""
)


def pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], check=False).returncode == 0


def ensure_postgres_up(timeout: float = 60) -> None:
    """Start the machine's Postgres if it is down (after a failed restart, say). Idempotent."""
    if shutil.which("pg_isready") is None or pg_ready():
        return
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", "start"], check=False, capture_output=True
    )
    wait_until(pg_ready, timeout, "PostgreSQL back up")


def restart_postgres() -> None:
    """Immediate-mode restart (no checkpoint, clients cut off), as a crash and recovery would."""
    try:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", "restart", "-m", "immediate"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    finally:
        ensure_postgres_up()


@dataclass
class ChaosStack(Stack):
    redis_aof: bool = True
    faults: dict[str, str] = field(default_factory=dict)  # the workers' current fault env

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            PARLEY_EXPIRE_INTERVAL_SECONDS="1",
            # Extra workers would fight over one /metrics port; the suite does not read them.
            PARLEY_WORKER_METRICS_PORT="0",
        )
        return env

    def db(self) -> Engine:
        url = self.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)

    # --- workers ------------------------------------------------------------------------

    def worker_names(self) -> list[str]:
        return [name for name in self.procs if name.startswith("worker")]

    def start_workers(self, faults: dict[str, str] | None = None) -> None:
        """Start the worker processes with ``faults`` (PARLEY_FAULT_* variables) and wait until ready."""
        self.faults = dict(faults or {})
        marks = {}
        for n, pool in enumerate(WORKER_POOLS, start=1):
            name = f"worker{n}"
            marks[name] = self.log_size(name)
            self.nodes[name] = node_name(f"chaos{n}")
            self.spawn(name, worker_command(f"chaos{n}@%h", pool), **self.faults)
        for name, mark in marks.items():
            wait_until(lambda n=name, m=mark: "ready" in self.log_since(n, m), 60, f"{name} ready")

    def stop_workers(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 90, group: bool = False) -> None:
        """Signal each worker's main process (SIGTERM: warm shutdown, running tasks finish),
        or with ``group`` every process of it at once, as systemd's default KillMode does."""
        procs = {name: self.procs.pop(name) for name in self.worker_names()}
        for proc in procs.values():
            if proc.poll() is None:
                (os.killpg if group else os.kill)(proc.pid, sig)
        deadline = time.monotonic() + timeout
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            # Whatever is left of the group (a pool child) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        """Everything at once (TERM to every process group, then KILL what lingers): a fast teardown."""
        procs = list(self.procs.values())
        self.procs.clear()
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def use_faults(self, faults: dict[str, str] | None = None) -> None:
        """Restart the workers (gracefully) only if their fault configuration changes."""
        if dict(faults or {}) == self.faults and self.worker_names():
            return
        self.stop_workers()
        self.start_workers(faults)

    def start_second_beat(self) -> None:
        self.start_beat("beat2")

    # --- Redis ----------------------------------------------------------------------------

    def kill_redis(self) -> None:
        proc = self.procs.pop("redis")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def force_redelivery(self) -> int:
        """Hand every unacknowledged task back to the queue, as Redis does once a task has run
        longer than the visibility timeout. Returns how many."""
        return restore_unacked(self.broker_url)

    # --- logs -----------------------------------------------------------------------------

    def log_size(self, name: str) -> int:
        path = self.workdir / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def log_since(self, name: str, mark: int) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def worker_log_marks(self) -> dict[str, int]:
        return {p.stem: p.stat().st_size for p in self.workdir.glob("worker*.log")}

    def worker_logs_since(self, marks: dict[str, int]) -> str:
        return "".join(self.log_since(p.stem, marks.get(p.stem, 0)) for p in sorted(self.workdir.glob("worker*.log")))


def restore_unacked(broker_url: str) -> int:
    """What the visibility timeout does when it runs out, now: every unacknowledged task goes
    back to its queue (kombu's own restore). Returns how many."""
    from kombu import Connection

    with Connection(broker_url, transport_options={"visibility_timeout": 0}) as conn:
        channel: Any = conn.default_channel
        client = channel.client
        before = int(client.zcard(channel.unacked_index_key))
        channel.qos.restore_visible(num=10_000)
        after = int(client.zcard(channel.unacked_index_key))
    return before - after


# --- driving customers ------------------------------------------------------------------


class Meta:
    """Posts signed webhooks the way Meta does: anything but 200 is retried later."""

    def __init__(self, stack: Stack, give_up_after: float = 240) -> None:
        self.stack = stack
        self.give_up_after = give_up_after
        self.statuses: Counter[int | None] = Counter()
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def deliver(self, payload: dict[str, Any], copies: int = 1, at_once: bool = False) -> None:
        """POST ``payload`` ``copies`` times (Meta's redeliveries), one after another or at once."""
        body = json.dumps(payload).encode()
        if at_once and copies > 1:
            threads = [threading.Thread(target=self._post_until_ok, args=(body,)) for _ in range(copies)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for _ in range(copies):
                self._post_until_ok(body)

    def _post_until_ok(self, body: bytes) -> None:
        deadline = time.monotonic() + self.give_up_after
        pause = 0.2
        while True:
            try:
                status: int | None = self.stack.post(body).status_code
            except requests.RequestException:
                status = None
            with self._lock:
                self.statuses[status] += 1
            if status == 200:
                return
            if status is not None and status != 503:
                with self._lock:
                    self.failures.append(f"receiver answered {status}")
                if status < 500:
                    return  # a 4xx for a correctly signed body would never change
            if time.monotonic() > deadline:
                with self._lock:
                    self.failures.append("gave up posting")
                return
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    @property
    def server_errors(self) -> int:
        """5xx other than 503 (the one answer that means: broker down, retry later)."""
        return sum(n for status, n in self.statuses.items() if status is not None and status >= 500 and status != 503)


class Progress:
    """Which inbound wamids are handled (committed), polled from the database in one thread."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._done: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="progress", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            with self._cond:
                pending = list(self._pending)
            if not pending:
                continue
            try:
                with self.db.connect() as conn:
                    found = {
                        r[0]
                        for r in conn.execute(
                            text("select wamid from inbound_messages where wamid = any(:w)"), {"w": pending}
                        )
                    }
            except Exception:  # Postgres restarting: look again in a moment
                time.sleep(0.5)
                continue
            with self._cond:
                self._pending -= found
                self._done |= found
                self._cond.notify_all()

    def wait(self, wamids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._pending |= set(wamids) - self._done
            while not set(wamids) <= self._done:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Scenario:
    name: str
    customers: list[Customer]
    faults: str = ""  # label for the table
    disrupt: Callable[[ChaosStack], None] | None = None  # runs alongside the customers
    turn_timeout: float = 150
    settle_timeout: float = 180
    quiet_seconds: float = 2.0


def _drive(
    stack: ChaosStack, meta: Meta, progress: Progress, customer: Customer, turn_timeout: float, log: list
) -> None:
    for turn in customer.turns:
        if turn.after is not None and not turn.after.wait(turn_timeout):
            log.append(f"{customer.name}: cue for the next turn never came; stopped")
            return
        posts: list[tuple[dict[str, Any], list[Msg]]]
        if turn.mode == "together":
            posts = [(customer.payload(turn.msgs), turn.msgs)]
        else:
            posts = [(customer.payload([m]), [m]) for m in turn.msgs]
        threads = [
            threading.Thread(target=meta.deliver, args=(p, customer.copies, customer.copies_at_once)) for p, _ in posts
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not progress.wait([m.wamid for m in turn.msgs], turn_timeout):
            log.append(f"{customer.name}: turn not handled within {turn_timeout}s; stopped")
            return


def settle(stack: ChaosStack, db: Engine, customers: list[Customer], timeout: float, quiet: float) -> None:
    """Wait until no customer has an open outbox row and the stub has been quiet for ``quiet`` s."""
    keys = [c.key for c in customers]
    recipients = {c.recipient for c in customers}

    def open_rows() -> int:
        try:
            with db.connect() as conn:
                return int(
                    conn.execute(
                        text(
                            "select count(*) from outbound_messages where user_key = any(:k)"
                            " and status in ('pending', 'sending')"
                        ),
                        {"k": keys},
                    ).scalar_one()
                )
        except Exception:
            return -1

    def calm() -> bool:
        if open_rows() != 0:
            return False
        last = max((r.arrived_at for r in stack.stub.requests() if r.recipient in recipients), default=0.0)
        return time.time() - last >= quiet

    with contextlib.suppress(AssertionError):  # what is still open is counted as stuck
        wait_until(calm, timeout, "the outbox to drain", interval=0.25)


def run_scenario(stack: ChaosStack, scenario: Scenario) -> tuple[Tally, Meta]:
    """Drive ``scenario.customers`` (with ``disrupt`` alongside), settle, audit."""
    started = time.monotonic()
    db = stack.db()
    meta = Meta(stack)
    progress = Progress(db)
    log: list[str] = []
    try:
        threads = [
            threading.Thread(target=_drive, args=(stack, meta, progress, c, scenario.turn_timeout, log), daemon=True)
            for c in scenario.customers
        ]
        errors: list[BaseException] = []

        def disrupt() -> None:
            try:
                if scenario.disrupt is not None:
                    scenario.disrupt(stack)
            except BaseException as exc:  # re-raised in the test's thread below
                errors.append(exc)

        disruptor = threading.Thread(target=disrupt, name="disrupt", daemon=True)
        disruptor.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        disruptor.join()
        if errors:
            raise errors[0]
        settle(stack, db, scenario.customers, scenario.settle_timeout, scenario.quiet_seconds)
        tally = audit(Tally(scenario.name, faults=scenario.faults), scenario.customers, stack.stub.requests(), db)
        tally.notes[:0] = log
        if meta.server_errors:
            tally.note(f"receiver answered 5xx (not 503) {meta.server_errors} times: {meta.failures[:3]}")
        tally.seconds = time.monotonic() - started
        return tally, meta
    finally:
        progress.close()
        db.dispose()


def assert_clean(tally: Tally, meta: Meta, window_at_most: int = 0) -> None:
    """Nothing lost, repeated, out of order or stuck; at most ``window_at_most`` window duplicates."""
    detail = "\n".join(tally.notes)
    assert meta.server_errors == 0, f"receiver 5xx other than 503: {meta.failures}"
    assert tally.messages > 0 and tally.replies > 0
    assert (tally.lost, tally.duplicated, tally.out_of_order, tally.stuck) == (0, 0, 0, 0), detail
    assert tally.window <= window_at_most, detail


def fault_env(
    points: str,
    action: str = "kill",
    probability: float = 1.0,
    for_seconds: float | None = None,
    match: str | None = None,
) -> dict[str, str]:
    """PARLEY_FAULT_* variables for ``ChaosStack.use_faults`` (see worker/faults.py)."""
    env = {"PARLEY_FAULT_POINT": points, "PARLEY_FAULT_ACTION": action, "PARLEY_FAULT_PROBABILITY": str(probability)}
    if for_seconds is not None:
        env["PARLEY_FAULT_UNTIL"] = str(time.time() + for_seconds)
    if match is not None:
        env["PARLEY_FAULT_MATCH"] = match
    return env
