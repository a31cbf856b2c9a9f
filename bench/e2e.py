"""End to end: simulated customers through new_order on the whole stack, beside pgbench.

One stack (Postgres, private Redis, gunicorn, Celery workers, Beat, the stub Graph API on
loopback) serves every run of this module; worker topologies are swapped between runs.
Runs, in order:

1. headline, ``runs`` times: an open-loop run at 80 msg/s, a closed-loop saturation run,
   the same two against the synchronous bot (``bench.sync_bot``: all the work inside the
   webhook request, gunicorn on the receiver's settings, parley's workers idle meanwhile;
   its 80 msg/s run in the first ``minor_runs`` repetitions only),
   pgbench (inbound transaction), pgbench (all database work of a message), interleaved
   so that each ratio compares figures taken under the same machine noise;
2. the latency curve: open-loop runs at fractions of the saturation throughput;
3. a py-spy profile of the workers during a saturation run (not counted in the figures);
4. the stub answering after 150 ms: with the default prefork workers, the synchronous
   bot (closed loop, ``concurrency`` customers; one run), then with a
   dedicated ``-Q outbound -P threads -c 64`` worker beside a prefork inbound worker (and
   that topology with the instant stub, for its own ratio);
5. worker scaling: one worker with a pool of 1, 2 and 4 processes, instant stub.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import psutil

from bench import pgbench, profile
from bench.common import (
    ROOT,
    BenchDatabase,
    CpuMeter,
    RunConfig,
    by_name,
    log,
    median,
    median_of,
    postgres_processes,
    ratio,
    rss_mib,
    tree,
    write_json,
)
from bench.customers import Feed, drive
from bench.graph_feed import RemoteStub, start_remote
from bench.stack import DEFAULT_WORKERS, GUNICORN_ARGS, BenchStack, WorkerSpec, topology
from tests.support.stack import new_workdir

TARGET_RATE = 80.0
SYNC_BOT_APP = "bench.sync_bot:create_app()"
# The sync bot runs on exactly the receiver's server settings, whatever they are.
SYNC_BOT_TOPOLOGY = f"sync bot: gunicorn {' '.join(GUNICORN_ARGS)}, all work in the request"
SPLIT_WORKERS = (
    WorkerSpec("inbound", 2, queues="inbound,maintenance"),
    WorkerSpec("outbound", 64, queues="outbound", pool="threads"),
)


def scaling_topologies() -> list[tuple[int, tuple[WorkerSpec, ...]]]:
    """1 and 2 pool processes; 4 is the default topology (two workers of two) of the headline runs."""
    return [(n, (WorkerSpec(f"pool{n}", n),)) for n in (1, 2)]


class E2EBench:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.run_tag = int(time.time()) % 1000
        self.db: BenchDatabase | None = None
        self.pgbench_db: BenchDatabase | None = None
        self.feed: Feed | None = None
        self.stub: RemoteStub | None = None
        self.stack: BenchStack | None = None
        self.sync_port = 0  # the synchronous bot's gunicorn
        self.results: dict[str, Any] = {}

    # --- setup -------------------------------------------------------------------------

    def start(self) -> None:
        self.db = BenchDatabase.create()
        # pgbench gets a database of its own: its pending outbox rows must not reach the
        # stack's sender through Beat's sweep.
        self.pgbench_db = BenchDatabase.create()
        feed_path = os.path.join(tempfile.gettempdir(), f"parley-bench-feed-{os.getpid()}.sock")
        self.feed = Feed(feed_path)
        workdir = new_workdir()
        self.stub = start_remote(feed_path, workdir / "stub.log", cwd=ROOT)
        self.stack = BenchStack(database_url=self.db.url, stub=self.stub, workdir=workdir)
        self.stack.start()
        # The baseline beside parley, on the same database, flows, stub and server settings;
        # its own metrics directory, so its gunicorn does not empty the receiver's.
        self.sync_port = self.stack.start_app(
            "syncbot", SYNC_BOT_APP, env={"PARLEY_METRICS_DIR": str(workdir / "metrics-syncbot")}
        )
        self.warm_up()
        self.warm_up(sync=True)

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop_all()
        if self.stub is not None:
            self.stub.stop()
        if self.feed is not None:
            self.feed.close()
        for db in (self.db, self.pgbench_db):
            if db is not None:
                db.close()

    def warm_up(self, sync: bool = False) -> None:
        """Until a customer gets a reply: the workers and receiver (or the sync bot) have booted and connected."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            result = self.drive("closed", 4, 3.0, 0.0, sync)
            if result["replies"] >= 4 and result["webhook_p99_ms"] < 1000:
                return
        who = "the sync bot" if sync else "the stack"
        raise RuntimeError(f"{who} never answered; logs in {self.stack.workdir if self.stack else '?'}")

    def groups(self) -> dict[str, Callable[[], list[psutil.Process]]]:
        stack, stub = self.stack, self.stub
        assert stack is not None and stub is not None
        return {
            "receiver (gunicorn)": lambda: stack.group("web"),
            "sync bot (gunicorn)": lambda: stack.group("syncbot"),
            "workers (celery)": lambda: stack.group("worker-"),
            "beat": lambda: stack.group("beat"),
            "redis": lambda: stack.group("redis"),
            "postgres": postgres_processes,
            "graph stub": lambda: tree(stub.pid),
            "load driver": lambda: [psutil.Process()],
            "pgbench": lambda: by_name("pgbench"),
            "py-spy": lambda: by_name("py-spy"),
        }

    # --- one measurement ---------------------------------------------------------------

    def drive(self, mode: str, load: float, seconds: float, warmup: float, sync: bool = False) -> dict[str, Any]:
        """One run of customers against parley's receiver, or (``sync``) against the sync bot."""
        assert self.stack is not None and self.feed is not None
        self.run_tag += 1
        meter = CpuMeter(self.groups())
        meter.start()
        port = self.sync_port if sync else self.stack.web_port
        result = drive(port, self.feed, self.run_tag, mode, load, seconds, warmup)
        summary = result.summary()
        summary["cpu_cores"] = meter.stop()
        summary["topology"] = SYNC_BOT_TOPOLOGY if sync else topology(self.stack.workers)
        return summary

    def measure(
        self, label: str, mode: str, load: float, seconds: float | None = None, sync: bool = False
    ) -> dict[str, Any]:
        c = self.config
        summary = self.drive(mode, load, seconds or c.e2e_seconds, c.e2e_warmup, sync)
        summary["label"] = label
        log(
            f"e2e {label}: {summary['throughput']} msg/s, p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
            f"lost {summary['lost']}, cpu {summary['cpu_cores'].get('machine_total')}"
        )
        return summary

    def pgbench(self, kind: str) -> dict[str, Any]:
        assert self.pgbench_db is not None
        meter = CpuMeter(self.groups())
        meter.start()
        out = pgbench.run(self.pgbench_db.url, kind, self.config.pgbench_seconds, clients=4)
        out["cpu_cores"] = meter.stop()
        log(f"pgbench {kind}: {out.get('tps')} tps {out.get('error', '')}")
        return out

    def worker_rss(self) -> dict[str, Any]:
        assert self.stack is not None
        procs = self.stack.group("worker-")
        return {"rss_mib": rss_mib(procs), "messages_so_far": self.results.get("messages_sent", 0)}

    # --- the sequence ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        c = self.config
        stack, stub = self.stack, self.stub
        assert stack is not None and stub is not None
        sent = sync_sent = 0
        rss_start = self.worker_rss()
        headline: list[dict[str, Any]] = []
        for i in range(c.runs):
            row: dict[str, Any] = {"run": i + 1}
            row["at_80"] = self.measure(f"open {TARGET_RATE:g} msg/s", "open", TARGET_RATE)
            row["saturation"] = self.measure(f"closed {c.concurrency} customers", "closed", c.concurrency)
            # The same customers against the sync bot; parley's workers sit idle meanwhile
            # (their CPU during these runs is in cpu_cores["workers (celery)"]). Its 80 msg/s
            # run (overloaded here, ~20 s with the drain) only in the first minor_runs.
            if i < c.minor_runs:
                row["sync_at_80"] = self.measure(
                    f"sync bot, open {TARGET_RATE:g} msg/s", "open", TARGET_RATE, sync=True
                )
                sync_sent += row["sync_at_80"]["sent"]
            row["sync_saturation"] = self.measure(
                f"sync bot, closed {c.concurrency} customers", "closed", c.concurrency, sync=True
            )
            row["ratio_to_sync"] = ratio(row["saturation"]["throughput"], row["sync_saturation"]["throughput"])
            row["pgbench_inbound"] = self.pgbench("inbound")
            row["pgbench_full"] = self.pgbench("full")
            row["ratio_inbound"] = ratio(row["saturation"]["throughput"], row["pgbench_inbound"].get("tps", 0.0))
            row["ratio_full"] = ratio(row["saturation"]["throughput"], row["pgbench_full"].get("tps", 0.0))
            sent += row["at_80"]["sent"] + row["saturation"]["sent"]
            sync_sent += row["sync_saturation"]["sent"]
            headline.append(row)
        saturation = median(r["saturation"]["throughput"] for r in headline)

        curve = []
        for fraction in (0.25, 0.5, 0.75) if c.curve else ():
            rate = max(2.0, round(saturation * fraction, 1))
            point = self.measure(f"curve {rate:g} msg/s", "open", rate, max(4.0, c.e2e_seconds * 0.6))
            sent += point["sent"]
            curve.append(point)

        profiled = self.profile_workers("e2e-workers") if c.extended_e2e else {"run": {"sent": 0}, "profile": {}}
        sent += profiled["run"]["sent"]
        self.results["messages_sent"] = sent
        rss_end = self.worker_rss()

        concurrency_slow = c.concurrency * 3  # Little's law: ≥ 0.3 s per reply needs more customers in flight
        stub.configure(latency=c.stub_latency)
        slow_default = [
            self.measure(f"stub {c.stub_latency * 1000:g} ms, default workers", "closed", concurrency_slow)
            for _ in range(c.minor_runs)
        ]
        # The sync bot holds a request slot (a sync process, or a gthread thread) for both
        # Graph calls of a message. ``concurrency`` customers are at least twice its slots
        # on the receiver's settings (2 processes, or 2 × 8 threads) and, at ≥ 0.3 s per
        # message, offer ~100 msg/s: the bot, not the customers, sets the rate. More would
        # only queue in gunicorn's backlog and lengthen the drain. One run: the rate is set
        # by the stub's sleeps (two runs agreed to 0.1 msg/s in every full run tried).
        slow_sync = [self.measure(f"sync bot, stub {c.stub_latency * 1000:g} ms", "closed", c.concurrency, sync=True)]
        sync_sent += sum(r["sent"] for r in slow_sync)
        self.results["sync_messages_sent"] = sync_sent
        stack.replace_workers(SPLIT_WORKERS)
        self.warm_up()
        slow_split = [
            self.measure(f"stub {c.stub_latency * 1000:g} ms, split workers", "closed", concurrency_slow)
            for _ in range(c.minor_runs)
        ]
        stub.configure(latency=0.0)
        fast_split: list[dict[str, Any]] = []
        scaling = [{"processes": 4, "topology": topology(DEFAULT_WORKERS), "runs": [r["saturation"] for r in headline]}]
        if c.extended_e2e:
            fast_split = [
                self.measure("instant stub, split workers", "closed", c.concurrency) for _ in range(c.minor_runs)
            ]
            for processes, specs in scaling_topologies():
                stack.replace_workers(specs)
                self.warm_up()
                runs = [
                    self.measure(f"{processes} worker process(es)", "closed", c.concurrency)
                    for _ in range(c.minor_runs)
                ]
                scaling.append({"processes": processes, "topology": topology(specs), "runs": runs})

        db_check = self.database_check()
        summary = self.summarize(headline, curve, slow_default, slow_split, fast_split, scaling)
        summary.update(self.summarize_sync(headline, slow_sync, slow_default, slow_split))
        return {
            "summary": summary,
            "headline_runs": headline,
            "curve": curve,
            "stub_latency_default": slow_default,
            "stub_latency_sync": slow_sync,
            "stub_latency_split": slow_split,
            "instant_split": fast_split,
            "scaling": scaling,
            "profile": profiled["profile"],
            "profile_run": profiled["run"],
            "worker_rss_start": rss_start,
            "worker_rss_end": rss_end,
            "database_check": db_check,
            "default_topology": topology(DEFAULT_WORKERS),
            "split_topology": topology(SPLIT_WORKERS),
            "sync_topology": SYNC_BOT_TOPOLOGY,
        }

    def profile_workers(self, name: str) -> dict[str, Any]:
        assert self.stack is not None
        c = self.config
        recorders = [
            profile.start_record(pid, c.profile_seconds, f"{name}-{n}")
            for n, pid in enumerate(self.stack.worker_pids())
        ]
        time.sleep(0.5)  # py-spy attaches before load starts
        run = self.measure("profiled saturation (not a figure)", "closed", c.concurrency, c.profile_seconds)
        paths = profile.finish(recorders)
        return {"run": run, "profile": profile.summarize(paths)}

    def database_check(self) -> dict[str, Any]:
        """No message lost in the database either: every inbound handled, nothing left unsent."""
        assert self.db is not None
        return {
            "inbound_rows": self.db.scalar("SELECT count(*) FROM inbound_messages WHERE user_key LIKE '19%'"),
            "inbound_failed": self.db.scalar(
                "SELECT count(*) FROM inbound_messages WHERE outcome = 'failed' AND user_key LIKE '19%'"
            ),
            "outbound_open": self.db.scalar(
                "SELECT count(*) FROM outbound_messages WHERE status IN ('pending', 'sending') AND user_key LIKE '19%'"
            ),
            "outbound_failed": self.db.scalar(
                "SELECT count(*) FROM outbound_messages WHERE status = 'failed' AND user_key LIKE '19%'"
            ),
        }

    def summarize(
        self,
        headline: list[dict[str, Any]],
        curve: list[dict[str, Any]],
        slow_default: list[dict[str, Any]],
        slow_split: list[dict[str, Any]],
        fast_split: list[dict[str, Any]],
        scaling: list[dict[str, Any]],
    ) -> dict[str, Any]:
        sat = [r["saturation"] for r in headline]
        at80 = [r["at_80"] for r in headline]
        instant = median_of(sat, "throughput")
        instant_split = median_of(fast_split, "throughput")
        everything = (
            sat + at80 + curve + slow_default + slow_split + fast_split + [r for s in scaling[1:] for r in s["runs"]]
        )
        return {
            **_side_figures("", sat, at80, everything),
            "pgbench_inbound_tps": median(r["pgbench_inbound"].get("tps", float("nan")) for r in headline),
            "pgbench_full_tps": median(r["pgbench_full"].get("tps", float("nan")) for r in headline),
            "ratio_to_pgbench_inbound": median(r["ratio_inbound"] for r in headline),
            "ratio_to_pgbench_full": median(r["ratio_full"] for r in headline),
            "stub_150_default_msg_s": median_of(slow_default, "throughput"),
            "stub_150_default_ratio": ratio(median_of(slow_default, "throughput"), instant),
            "stub_150_split_msg_s": median_of(slow_split, "throughput"),
            "instant_split_msg_s": instant_split,
            "stub_150_split_ratio_to_default_instant": ratio(median_of(slow_split, "throughput"), instant),
            "stub_150_split_ratio_to_split_instant": ratio(median_of(slow_split, "throughput"), instant_split),
            "scaling_msg_s": {str(s["processes"]): median_of(s["runs"], "throughput") for s in scaling},
            "curve": [(p["load"], p["throughput"], p["p50_ms"], p["p99_ms"]) for p in curve],
        }

    def summarize_sync(
        self,
        headline: list[dict[str, Any]],
        slow_sync: list[dict[str, Any]],
        slow_default: list[dict[str, Any]],
        slow_split: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The synchronous bot's figures, and parley against them (ratios of runs taken side by side)."""
        sat = [r["sync_saturation"] for r in headline]
        at80 = [r["sync_at_80"] for r in headline if "sync_at_80" in r]
        instant = median_of(sat, "throughput")
        slow = median_of(slow_sync, "throughput")
        return {
            # Parley's idle workers are in sync_saturation_cpu_cores: ~0 means no competition.
            **_side_figures("sync_", sat, at80, sat + at80 + slow_sync),
            "sync_at_80_overloaded_runs": sum(bool(r["overloaded"]) for r in at80),
            "sync_stub_150_msg_s": slow,
            "sync_stub_150_ratio": ratio(slow, instant),
            "sync_stub_150_customers": self.config.concurrency,
            "sync_stub_150_webhook_p50_ms": median_of(slow_sync, "webhook_p50_ms"),
            "sync_stub_150_webhook_p99_ms": median_of(slow_sync, "webhook_p99_ms"),
            "sync_stub_150_webhook_over_1s_pct": median_of(slow_sync, "webhook_over_1s_pct"),
            # parley / sync bot: the median of the per-repetition ratios (each pair measured
            # back to back), and the ratio of the medians.
            "ratio_parley_to_sync": median(r["ratio_to_sync"] for r in headline),
            "ratio_parley_to_sync_of_medians": ratio(
                median_of([r["saturation"] for r in headline], "throughput"), instant
            ),
            "ratio_parley_to_sync_stub_150_default": ratio(median_of(slow_default, "throughput"), slow),
            "ratio_parley_to_sync_stub_150_split": ratio(median_of(slow_split, "throughput"), slow),
        }


def _side_figures(
    prefix: str, sat: list[dict[str, Any]], at80: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> dict[str, Any]:
    """The figures parley and the sync bot both get (keys ``prefix`` + name): saturation,
    80 msg/s offered, the CPU of each process group, and the totals of all their runs."""
    return {
        f"{prefix}saturation_msg_s": median_of(sat, "throughput"),
        f"{prefix}saturation_p50_ms": median_of(sat, "p50_ms"),
        f"{prefix}saturation_p99_ms": median_of(sat, "p99_ms"),
        f"{prefix}saturation_webhook_p99_ms": median_of(sat, "webhook_p99_ms"),
        f"{prefix}at_80_achieved_msg_s": median_of(at80, "throughput"),
        f"{prefix}at_80_p50_ms": median_of(at80, "p50_ms"),
        f"{prefix}at_80_p99_ms": median_of(at80, "p99_ms"),
        f"{prefix}lost_total": sum(r["lost"] for r in everything),
        f"{prefix}unexpected_replies_total": sum(r["unexpected_replies"] for r in everything),
        f"{prefix}post_failed_total": sum(r["post_failed"] for r in everything),
        f"{prefix}messages_total": sum(r["sent"] for r in everything),
        f"{prefix}noise_cores": median(r["cpu_cores"]["not_ours"] for r in sat),
        f"{prefix}saturation_cpu_cores": {k: median(r["cpu_cores"][k] for r in sat) for k in sat[0]["cpu_cores"]},
    }


def run(config: RunConfig) -> dict[str, Any]:
    bench = E2EBench(config)
    try:
        bench.start()
        results = bench.run()
    finally:
        bench.stop()
    write_json("e2e", results)
    return results
