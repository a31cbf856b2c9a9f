"""Receiver: signed webhook POSTs against parley's gunicorn, beside a plain Flask endpoint.

Both apps run at once under gunicorn with the same settings (the recommended ones of
``gunicorn.conf.py``: worker class, threads; ``bench.stack.GUNICORN_ARGS`` fixes
2 workers), only one is loaded at a time,
and runs alternate (parley, plain, plain, parley, ...) so both see the same machine noise.
Figures: saturation throughput with wrk (closed loop), latency at 80 req/s (open loop,
counted from the scheduled send time), a latency curve against offered load, and a py-spy
profile of parley's gunicorn workers at saturation. No Celery worker runs: the payloads
accumulate in the private Redis, which is flushed after every parley run.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import psutil

from bench import profile
from bench.common import (
    BenchDatabase,
    CpuMeter,
    RunConfig,
    by_name,
    log,
    median,
    median_of,
    ratio,
    write_json,
)
from bench.load import OpenLoopResult, http_post, open_loop, run_wrk
from bench.stack import GUNICORN_ARGS, BenchStack
from tests.support.stack import new_workdir
from tests.support.webhooks import APP_SECRET, contact, message, webhook
from webhook.signature import sign

TARGET_RATE = 80.0
# wrk's keep-alive connections stay with the gunicorn process that accepted them, and
# with 8 of them one process often got most: the same app then measured ~2,000 or
# ~4,700 req/s from run to run (one busy core or two). 64 spread evenly enough that
# repeated runs of the plain app agreed (~6,000 req/s here).
WRK_CONNECTIONS = 64
APPS = {"parley": "webhook:create_app()", "plain": "bench.plain_app:create_app()"}
# The setting the recommended one (gthread, gunicorn.conf.py) replaced: gunicorn's
# sync workers, one request per process. Measured beside it, for information.
SYNC = ("--worker-class", "sync", "--threads", "1")  # threads > 1 would make gunicorn pick gthread
VARIANTS = {"parley-sync": APPS["parley"], "plain-sync": APPS["plain"]}


@dataclass
class NoStub:
    """The receiver never calls Graph; Stack only needs a URL."""

    url: str = "http://127.0.0.1:9/v25.0"


def signed_request() -> tuple[bytes, dict[str, str]]:
    """One realistic single-message webhook (a customer typing "hi"), signed as Meta signs it."""
    user = "15550001234"
    body = json.dumps(webhook([message(user, "hi", wamid="wamid.BENCHRECEIVER")], [contact(user)])).encode()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}


class ReceiverBench:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.body, self.headers = signed_request()
        self.db: BenchDatabase | None = None
        self.stack: BenchStack | None = None

    def start(self) -> None:
        self.db = BenchDatabase.create(flows=False)
        self.stack = BenchStack(database_url=self.db.url, stub=NoStub(), workdir=new_workdir())
        self.stack.start_redis()
        for name, app in APPS.items():
            self.stack.start_app(name, app)
        for name, app in VARIANTS.items():
            self.stack.start_app(name, app, extra=SYNC)
        for name in [*APPS, *VARIANTS]:  # first requests load lazily-imported modules; not part of any figure
            run_wrk(self.url(name), self.body, self.headers, 1, WRK_CONNECTIONS)
        self.stack.flush_redis()

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop_all()
        if self.db is not None:
            self.db.close()

    def url(self, name: str) -> str:
        assert self.stack is not None
        return f"http://127.0.0.1:{self.stack.apps[name]}/webhook"

    def meter(self) -> CpuMeter:
        stack = self.stack
        assert stack is not None
        return CpuMeter(
            {
                "parley gunicorn": lambda: stack.group("parley"),
                "plain gunicorn": lambda: stack.group("plain"),
                # group() matches by prefix: "parley" also counts "parley-sync" (idle unless measured)
                "redis": lambda: stack.group("redis"),
                "wrk": lambda: by_name("wrk"),
                "load driver": lambda: [psutil.Process()],
                "py-spy": lambda: by_name("py-spy"),
            }
        )

    def saturation(self, name: str, seconds: float) -> dict[str, Any]:
        assert self.stack is not None
        meter = self.meter()
        meter.start()
        out = run_wrk(self.url(name), self.body, self.headers, seconds, WRK_CONNECTIONS)
        out["cpu_cores"] = meter.stop()
        out["app"] = name
        if name.startswith("parley"):
            self.stack.flush_redis()
        log(f"receiver {name} saturation: {out.get('rps')} req/s, p99 {out.get('p99_ms')} ms {out.get('error', '')}")
        return out

    def fixed_rate(self, name: str, rate: float, seconds: float) -> dict[str, Any]:
        assert self.stack is not None
        port = self.stack.apps[name]

        async def one(_: int) -> int:
            return await http_post(port, "/webhook", self.body, self.headers)

        meter = self.meter()
        meter.start()
        result: OpenLoopResult = asyncio.run(open_loop(rate, seconds, one))
        out = result.summary()
        out["cpu_cores"] = meter.stop()
        out["app"] = name
        if name.startswith("parley"):
            self.stack.flush_redis()
        return out

    def run(self) -> dict[str, Any]:
        c = self.config
        order = [("parley", "plain"), ("plain", "parley")]
        saturation: list[dict[str, Any]] = []
        at_80: list[dict[str, Any]] = []
        for i in range(c.runs):
            pair = {name: self.saturation(name, c.receiver_seconds) for name in order[i % 2]}
            pair["ratio"] = ratio(pair["parley"].get("rps", 0.0), pair["plain"].get("rps", 0.0))
            saturation.append(pair)
        for i in range(c.runs):
            pair = {name: self.fixed_rate(name, TARGET_RATE, c.receiver_rate_seconds) for name in order[i % 2]}
            log(
                f"receiver at {TARGET_RATE:g} req/s: parley p99 {pair['parley']['p99_ms']} ms, plain {pair['plain']['p99_ms']} ms"
            )
            at_80.append(pair)
        plain_max = median(p["plain"].get("rps", float("nan")) for p in saturation)
        parley_max = median(p["parley"].get("rps", float("nan")) for p in saturation)
        variants = []
        for i in range(c.minor_runs if c.curve else 0):
            pair = {name: self.saturation(name, c.receiver_seconds) for name in list(VARIANTS)[:: 1 if i % 2 else -1]}
            variants.append(pair)
        # Both apps at the same offered rates: dense around parley's knee, two points near plain's.
        rates = sorted(
            {max(10, round(parley_max * f)) for f in (0.1, 0.25, 0.5, 0.75, 1.0, 1.25)}
            | {max(10, round(plain_max * f)) for f in (0.5, 0.9)}
        )
        curve: list[dict[str, Any]] = []
        for rate in rates if c.curve else ():
            for name in APPS:
                point = self.fixed_rate(name, rate, c.curve_seconds)
                curve.append(point)
            log(f"receiver curve {rate:g} req/s done")
        profiled = self.profile()
        summary = {
            "parley_rps": median(p["parley"].get("rps", float("nan")) for p in saturation),
            "plain_rps": plain_max,
            "ratio": median(p["ratio"] for p in saturation),
            "parley_saturation_p50_ms": median(p["parley"].get("p50_ms", float("nan")) for p in saturation),
            "parley_saturation_p99_ms": median(p["parley"].get("p99_ms", float("nan")) for p in saturation),
            "plain_saturation_p50_ms": median(p["plain"].get("p50_ms", float("nan")) for p in saturation),
            "plain_saturation_p99_ms": median(p["plain"].get("p99_ms", float("nan")) for p in saturation),
            "parley_at_80_p50_ms": median_of([p["parley"] for p in at_80], "p50_ms"),
            "parley_at_80_p99_ms": median_of([p["parley"] for p in at_80], "p99_ms"),
            "plain_at_80_p50_ms": median_of([p["plain"] for p in at_80], "p50_ms"),
            "plain_at_80_p99_ms": median_of([p["plain"] for p in at_80], "p99_ms"),
            "noise_cores": median(p["parley"]["cpu_cores"]["not_ours"] for p in saturation),
            "parley_sync_rps": median(p["parley-sync"].get("rps", float("nan")) for p in variants),
            "plain_sync_rps": median(p["plain-sync"].get("rps", float("nan")) for p in variants),
            "parley_sync_p99_ms": median(p["parley-sync"].get("p99_ms", float("nan")) for p in variants),
            "parley_errors": sum(
                p["parley"].get("non_2xx", 0) + p["parley"].get("socket_errors", 0) for p in saturation
            ),
        }
        return {
            "summary": summary,
            "settings": {
                "gunicorn": GUNICORN_ARGS,
                "worker_class": {name: self.worker_class(name) for name in [*APPS, *VARIANTS]},
                "wrk_connections": WRK_CONNECTIONS,
                "body_bytes": len(self.body),
            },
            "saturation_runs": saturation,
            "at_80_runs": at_80,
            "sync_runs": variants,
            "curve": curve,
            "profile": profiled,
        }

    def worker_class(self, name: str) -> str | None:
        """The worker class gunicorn says it uses ("Using worker: gthread" in its log)."""
        assert self.stack is not None
        log_file = self.stack.workdir / f"{name}.log"
        text = log_file.read_text(errors="replace") if log_file.exists() else ""
        found = re.search(r"Using worker: (\w+)", text)
        return found.group(1) if found else None

    def profile(self) -> dict[str, Any]:
        assert self.stack is not None
        seconds = self.config.profile_seconds / 2
        recorder = profile.start_record(self.stack.pid("parley"), seconds, "receiver-parley")
        run = self.saturation("parley", seconds)
        paths = profile.finish([recorder])
        return {"run_not_a_figure": run, **profile.summarize(paths)}


def run(config: RunConfig) -> dict[str, Any]:
    bench = ReceiverBench(config)
    try:
        bench.start()
        results = bench.run()
    finally:
        bench.stop()
    write_json("receiver", results)
    return results
