"""Shared pieces of the suite: settings of a run, statistics, results on disk, databases, CPU accounting.

Nothing here is timed; it is what every benchmark module needs to measure honestly on a
shared 2-core machine: medians of several runs, ratios against a ceiling taken in the same
run, and where the CPU went while a figure was measured.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from settings import normalize_database_url
from tests.support.database import ADMIN_URL, migrate

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class RunConfig:
    """How long and how often each benchmark runs; ``quick`` is the < 3 minute smoke variant."""

    quick: bool = False
    runs: int = 3  # repetitions of the headline figures (their median is reported)
    minor_runs: int = 2  # repetitions of secondary rows
    receiver_seconds: float = 5.0  # one wrk run at saturation
    receiver_rate_seconds: float = 5.0  # one open-loop run at a fixed rate
    curve_seconds: float = 2.5  # one point of the latency-against-load curve
    curve: bool = True  # latency curves (receiver and end to end)
    e2e_seconds: float = 8.0  # one end-to-end run, warm-up included
    e2e_warmup: float = 2.0
    pgbench_seconds: float = 5.0
    concurrency: int = 32  # simulated customers at once in a saturation run
    extended_e2e: bool = True  # split topology, worker scaling, profile
    memory_messages: int = 20_000  # make bench-memory runs 100,000 (about 15 minutes)
    receiver_memory_requests: int = 100_000
    profile_seconds: float = 8.0
    keyword_sizes: tuple[int, ...] = (10, 1_000, 10_000)
    keyword_reps: int = 5
    stub_latency: float = 0.150

    @classmethod
    def full(cls) -> RunConfig:
        return cls()

    @classmethod
    def quick_config(cls) -> RunConfig:
        return cls(
            quick=True,
            runs=1,
            minor_runs=1,
            receiver_seconds=2.5,
            receiver_rate_seconds=2.5,
            curve=False,
            e2e_seconds=4.0,
            e2e_warmup=1.0,
            pgbench_seconds=3.0,
            extended_e2e=False,
            memory_messages=1_000,
            receiver_memory_requests=3_000,
            profile_seconds=3.0,
            keyword_reps=2,
        )


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the figures."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- statistics -----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds, plus the sample count."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else math.nan,
    }


def median(values: Iterable[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def median_of(runs: Sequence[dict[str, Any]], key: str) -> float:
    return median(float(r[key]) for r in runs if key in r)


# --- results on disk -------------------------------------------------------------------


def write_json(name: str, data: Any) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_jsonable, allow_nan=True) + "\n")
    return path


def read_json(name: str) -> Any:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


# --- which Postgres --------------------------------------------------------------------

_server: dict[str, Any] = {"admin_url": ADMIN_URL, "pid": None}


def use_postgres(admin_url: str, pid: int | None) -> None:
    """Point every later benchmark database at this server (bench.postgres.PrivatePostgres)."""
    _server.update(admin_url=normalize_database_url(admin_url), pid=pid)


def admin_url() -> str:
    return str(_server["admin_url"])


def postgres_processes() -> list[psutil.Process]:
    pid = _server["pid"]
    return tree(pid) if pid else by_name("postgres")


def create_database() -> str:
    """A new empty database on the benchmark's server; returns its URL."""
    admin = create_engine(sqlalchemy_url(admin_url()), isolation_level="AUTOCOMMIT")
    name = f"parley_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop it; retried for a while, since a shared server may be restarting."""
    name = make_url(url).database
    deadline = time.monotonic() + 30
    while True:
        try:
            admin = create_engine(sqlalchemy_url(admin_url()), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                log(f"could not drop {name}: {exc.__class__.__name__}")
                return
            time.sleep(1)


def machine_info() -> dict[str, Any]:
    """What the figures were measured on, including the database's durability settings."""
    info: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }
    try:
        engine = create_engine(sqlalchemy_url(admin_url()))
        with engine.connect() as conn:
            info["postgres_private_server"] = bool(_server["pid"])
            for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections"):
                info[f"postgres_{name}"] = conn.execute(text(f"SHOW {name}")).scalar()
        engine.dispose()
    except Exception as exc:  # the benchmarks that need Postgres will say so themselves
        info["postgres_error"] = f"{exc.__class__.__name__}: {exc}"
    return info


# --- databases -------------------------------------------------------------------------


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def libpq_url(url: str) -> str:
    """The URL for psql/pgbench (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass
class BenchDatabase:
    """A fresh migrated Postgres database for one benchmark, dropped on ``close``."""

    url: str = field(default="")

    @classmethod
    def create(cls, flows: bool = True) -> BenchDatabase:
        url = create_database()
        migrate(url)
        db = cls(url)
        if flows:
            db.load_flows()
        return db

    def load_flows(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "WHATSAPP_"))}
        env.update(DATABASE_URL=self.url, PARLEY_ENV="test", PYTHONPATH=str(ROOT))
        subprocess.run(
            [str(BIN / "flask"), "--app", "webhook", "templates", "load", "templates/"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )

    def execute(self, *statements: str) -> None:
        engine = create_engine(sqlalchemy_url(self.url), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
        engine.dispose()

    def scalar(self, statement: str) -> Any:
        engine = create_engine(sqlalchemy_url(self.url))
        with engine.connect() as conn:
            value = conn.execute(text(statement)).scalar()
        engine.dispose()
        return value

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]

    def close(self) -> None:
        if self.url:
            drop_database(self.url)
            self.url = ""


# --- where the CPU went ----------------------------------------------------------------


ProcessGroups = dict[str, Callable[[], list[psutil.Process]]]


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (a gunicorn master and its workers, a Celery pool)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def by_name(name: str) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == name:
            out.append(proc)
    return out


def _cpu_seconds(procs: Iterable[psutil.Process]) -> dict[int, float]:
    seen: dict[int, float] = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
            seen[proc.pid] = times.user + times.system
        except psutil.Error:
            continue
    return seen


class CpuMeter:
    """CPU seconds each group of processes used between ``start()`` and ``stop()``.

    Reported as cores busy (1.0 = one core all the time); on this machine 2.0 is everything.
    """

    def __init__(self, groups: ProcessGroups) -> None:
        self.groups = groups
        self._before: dict[str, dict[int, float]] = {}
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._before = {name: _cpu_seconds(find()) for name, find in self.groups.items()}
        self._machine = psutil.cpu_times()

    def stop(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        out: dict[str, float] = {}
        for name, find in self.groups.items():
            after = _cpu_seconds(find())
            before = self._before.get(name, {})
            used = sum(t - before.get(pid, 0.0) for pid, t in after.items())
            out[name] = round(used / elapsed, 3)
        machine = psutil.cpu_times()
        busy = (machine.user + machine.system + machine.nice + getattr(machine, "softirq", 0.0)) - (
            self._machine.user + self._machine.system + self._machine.nice + getattr(self._machine, "softirq", 0.0)
        )
        out["machine_total"] = round(busy / elapsed, 3)
        # Whatever else ran on this shared machine meanwhile (other people's tests, say).
        out["not_ours"] = round(
            max(0.0, out["machine_total"] - sum(v for k, v in out.items() if k != "machine_total")), 3
        )
        return out


def rss_mib(procs: Iterable[psutil.Process]) -> dict[int, float]:
    out: dict[int, float] = {}
    for proc in procs:
        try:
            out[proc.pid] = round(proc.memory_info().rss / 2**20, 1)
        except psutil.Error:
            continue
    return out
