"""Resident memory of a worker and of the receiver over many messages.

Worker: a child process (``python -m bench.memory --worker``) that imports the Celery
tasks module like a pool process and feeds the worker's inbound processing
(``worker.inbound.process_raw``) directly, message after message of the new_order flow on
Postgres, printing its RSS every ``messages / 20``. Not through HTTP and Celery: at about
8 ms of Python per message (see the profile) 100,000 messages through the whole stack
would take ~30 minutes on 2 cores; the real prefork children's RSS before and after the
end-to-end runs is in e2e.json for comparison.

Receiver: parley's gunicorn under wrk for as many requests, sampled after every chunk,
while the worker child runs (memory, not speed, is measured here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from bench.common import ROOT, BenchDatabase, RunConfig, log, rss_mib, write_json
from bench.load import run_wrk
from bench.receiver import NoStub, signed_request
from bench.stack import BenchStack
from tests.support.stack import new_workdir

WARMUP_FRACTION = 0.1


def growth(samples: list[dict[str, float]], key: str) -> dict[str, float]:
    """RSS after warm-up (the first sample at ≥ 10% of the run) against the last sample."""
    if not samples:
        return {}
    total = samples[-1]["count"]
    warm = next((s for s in samples if s["count"] >= total * WARMUP_FRACTION), samples[0])
    last = samples[-1]
    return {
        "after_warmup_mib": warm[key],
        "warmup_at": warm["count"],
        "final_mib": last[key],
        "final_at": last["count"],
        "growth_pct": round(100.0 * (last[key] - warm[key]) / warm[key], 2) if warm[key] else float("nan"),
        "peak_mib": max(s[key] for s in samples),
    }


def run(config: RunConfig, messages: int | None = None) -> dict[str, Any]:
    n = messages or config.memory_messages
    db = BenchDatabase.create()
    stack = BenchStack(database_url=db.url, stub=NoStub(), workdir=new_workdir())
    env = stack.env()
    worker_samples: list[dict[str, float]] = []
    receiver_samples: list[dict[str, float]] = []
    started = time.monotonic()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.memory", "--worker", "--messages", str(n)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

        def read_child() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                sample = json.loads(line)
                worker_samples.append(sample)
                if len(worker_samples) % 5 == 0:
                    log(f"memory: worker {sample['count']} messages, {sample['rss_mib']} MiB")

        reader = threading.Thread(target=read_child, daemon=True)
        reader.start()
        stack.start_redis()
        port = stack.start_app("parley", "webhook:create_app()")
        body, headers = signed_request()
        done = 0
        while done < config.receiver_memory_requests:
            out = run_wrk(f"http://127.0.0.1:{port}/webhook", body, headers, 5, 4)
            done += int(out.get("requests", 0))
            stack.flush_redis()
            rss = rss_mib(stack.group("parley"))
            receiver_samples.append({"count": done, "rss_mib": round(sum(rss.values()), 1), "per_process": rss})
            if not out.get("requests"):
                break
        log(f"memory: receiver done after {done} requests")
        child.wait(timeout=max(600.0, n * 0.05))
        reader.join(timeout=10)
    finally:
        stack.stop_all()
        db.close()
    results = {
        "summary": {
            "worker_messages": worker_samples[-1]["count"] if worker_samples else 0,
            "worker": growth(worker_samples, "rss_mib"),
            "receiver_requests": receiver_samples[-1]["count"] if receiver_samples else 0,
            "receiver": growth(receiver_samples, "rss_mib"),
            "seconds": round(time.monotonic() - started, 1),
            "worker_ms_per_message": round(worker_samples[-1]["elapsed_s"] * 1000 / max(n, 1), 2)
            if worker_samples
            else None,
            "method": "worker: process_raw in a child process on Postgres (inbound only); receiver: wrk over HTTP",
        },
        "worker_samples": worker_samples,
        "receiver_samples": receiver_samples,
    }
    write_json(f"memory-{n}", results)
    return results


# --- the worker child -------------------------------------------------------------------


def worker_main(messages: int) -> None:
    import psutil

    import worker.tasks  # noqa: F401 - load what a pool process has loaded
    from bench.customers import FLOW
    from settings import get_settings
    from tests.support.webhooks import contact, message, webhook
    from worker.inbound import process_raw

    settings = get_settings()
    proc = psutil.Process()
    every = max(1, messages // 20)
    started = time.monotonic()
    prefix = f"17{os.getpid() % 1000:03d}"
    for i in range(messages):
        customer, step = divmod(i, len(FLOW))
        phone = f"{prefix}{customer:07d}"
        raw = json.dumps(webhook([message(phone, **FLOW[step])], [contact(phone)]))
        process_raw(raw, settings, lambda _user: None)
        if (i + 1) % every == 0 or i + 1 == messages:
            sample = {
                "count": i + 1,
                "rss_mib": round(proc.memory_info().rss / 2**20, 1),
                "elapsed_s": round(time.monotonic() - started, 1),
            }
            print(json.dumps(sample), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the worker side of the memory benchmark")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.messages)
