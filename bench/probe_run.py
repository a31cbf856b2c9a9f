"""The side-by-side runs of the batched-pipeline probe (designs in ``bench/probe_stream.py``).

In one run, under the same machine noise: today's stack ("a"), the sketches b1-b6 (each its
own receiver and two consumer processes, on its own stream) and the in-request bot, at
saturation, at fixed rates and with a Graph stub answering after 150 ms; a crash run that
SIGKILLs a consumer (or today's Celery worker) mid-load; and the receiver variants against
plain Flask on the same gunicorn settings.

    .venv/bin/python -m bench.probe_run              # three rounds (~15 min), prints medians
    .venv/bin/python -m bench.probe_run --rounds 1   # a quicker look
    .venv/bin/python -m bench.probe_run crash        # kills under load: lost, duplicated, late replies
    .venv/bin/python -m bench.probe_run receivers    # receiver variants against plain Flask

Figures go to ``bench/results/probe_stream.json`` (side by side) and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench.probe_stream import MODES, STREAM

DESIGNS = {"b1": "inline", "b2": "pipelined", "b3": "safe", "b4": "batched", "b5": "replyfirst", "b6": "sessionlock"}
SATURATED = ("a", *DESIGNS, "bot")  # today's stack, the sketches, the in-request bot
LOW_LOAD = ("b3", "b4", "b5", "b6")  # the crash-safe sketches, at 20 msg/s, 80 msg/s and half their saturation


def run(rounds: int, seconds: float) -> dict[str, Any]:
    from bench.common import RunConfig, log, median, write_json
    from bench.e2e import E2EBench
    from tests.support.stack import BIN

    bench = E2EBench(RunConfig(e2e_seconds=seconds))
    bench.start()
    stack, stub = bench.stack, bench.stub
    assert stack is not None and stub is not None
    n = bench.config.concurrency
    try:
        ports = {"a": stack.web_port, "bot": bench.sync_port}
        for design, mode in DESIGNS.items():
            stream = f"{STREAM}:{design}"
            ports[design] = stack.start_app(
                f"{design}-web", "bench.probe_receiver:create_app()", env={"PROBE_STREAM": stream}
            )
            for i in (1, 2):
                args = [str(BIN / "python"), "-m", "bench.probe_stream", "consume", f"c{i}", stream, mode]
                stack.spawn(f"{design}-c{i}", args)
        groups = bench.groups()
        for design in DESIGNS:
            groups[f"{design} receiver"] = lambda d=design: stack.group(f"{d}-web")
            groups[f"{design} consumers"] = lambda d=design: stack.group(f"{d}-c")
        bench.groups = lambda: groups  # type: ignore[method-assign]

        def go(who: str, label: str, mode: str, load: float) -> dict[str, Any]:
            saved = stack.web_port
            stack.web_port = ports[who]
            try:
                out = bench.measure(f"{who} {label}", mode, load)
            finally:
                stack.web_port = saved
            return out

        for design in DESIGNS:
            for _ in range(30):  # until the consumers have joined and answer
                if go(design, "warm-up", "closed", 4)["replies"] >= 4:
                    break
        rows: list[dict[str, Any]] = []
        for i in range(rounds):
            row = {f"{who}_sat": go(who, f"closed {n}", "closed", n) for who in SATURATED}
            row["a_20"] = go("a", "open 20", "open", 20.0)
            for who in LOW_LOAD:
                half = round(row[f"{who}_sat"]["throughput"] / 2, 1)
                row[f"{who}_20"] = go(who, "open 20", "open", 20.0)
                row[f"{who}_80"] = go(who, "open 80", "open", 80.0)
                row[f"{who}_half"] = go(who, f"open {half:g}", "open", half)
            row["bot_80"] = go("bot", "open 80", "open", 80.0)  # the in-request bot's wait at that load, for scale
            rows.append(row)
            log(f"round {i + 1} done")
        stub.configure(latency=0.150)
        slow = {
            who: [go(who, "stub 150 ms", "closed", n if who == "bot" else n * 3) for _ in range(rounds)]
            for who in SATURATED
        }
        stub.configure(latency=0.0)
        workdir = stack.workdir
    finally:
        bench.stop()
    # Batches the set-based sketches (b4-b6) could not run and handed to process_event one by one.
    fallbacks = sum(log.read_text().count("batch failed") for log in workdir.glob("b[456]-c*.log"))

    def cpu_ms(run: dict[str, Any], group: str = "machine_total") -> float:
        return round(1000 * run["cpu_cores"].get(group, 0.0) / max(run["throughput"], 1e-9), 2)

    def med(key: str, f: Callable[[dict[str, Any]], float]) -> float:
        return round(median(f(r[key]) for r in rows), 3)

    sat = tuple(f"{who}_sat" for who in SATURATED)
    summary: dict[str, Any] = {
        "set_based_batches_handled_one_by_one": fallbacks,
        "throughput": {k: med(k, lambda x: x["throughput"]) for k in rows[0]},
        "cpu_ms_per_msg": {k: med(k, cpu_ms) for k in rows[0]},
        "p99_ms": {k: med(k, lambda x: x["p99_ms"]) for k in rows[0]},
        "slow_throughput": {who: median(r["throughput"] for r in runs) for who, runs in slow.items()},
        "lost": sum(r[k]["lost"] for r in rows for k in r) + sum(r["lost"] for runs in slow.values() for r in runs),
        "duplicates": sum(r[k]["unexpected_replies"] for r in rows for k in r)
        + sum(r["unexpected_replies"] for runs in slow.values() for r in runs),
        "cpu_ms_by_group": {
            k: {g: med(k, lambda x, g=g: cpu_ms(x, g)) for g in rows[0][k]["cpu_cores"] if rows[0][k]["cpu_cores"][g]}
            for k in sat
        },
    }
    summary["ratio_to_bot"] = {
        who: round(median(r[f"{who}_sat"]["throughput"] / r["bot_sat"]["throughput"] for r in rows), 3)
        for who in SATURATED[:-1]
    }
    write_json("probe_stream", {"summary": summary, "rows": rows, "slow": slow})
    return summary


def crash(kills: int, seconds: float, rate: float, mode: str) -> dict[str, Any]:
    """Replies late by more than 5 s when a consumer of the sketch (``mode``) or a Celery worker
    (today) is SIGKILLed mid-load and restarted a second later, as a supervisor would; ``kills``
    kills per run."""
    import signal
    import threading as th

    from bench.common import RunConfig, log
    from bench.customers import drive
    from bench.e2e import E2EBench
    from tests.support.stack import BIN

    bench = E2EBench(RunConfig(e2e_seconds=seconds))
    bench.start()
    stack = bench.stack
    assert stack is not None and bench.feed is not None
    stream = f"{STREAM}:crash"
    port = stack.start_app("sketch-web", "bench.probe_receiver:create_app()", env={"PROBE_STREAM": stream})

    def consumer(i: int) -> list[str]:
        return [str(BIN / "python"), "-m", "bench.probe_stream", "consume", f"c{i}", stream, mode]

    for i in (1, 2):
        stack.spawn(f"sketch-c{i}", consumer(i))
    out: dict[str, Any] = {}
    try:
        for who, victim, args in (
            ("sketch", "sketch-c1", consumer(1)),
            ("today", "worker-w1", list(stack.workers[0].args())),
        ):
            target = port if who == "sketch" else stack.web_port
            bench.run_tag += 1
            drive(target, bench.feed, bench.run_tag, "closed", 4, 4.0, 0.5)  # warm
            result: dict[str, Any] = {}

            bench.run_tag += 2
            tag = bench.run_tag

            def load(target: int = target, result: dict[str, Any] = result, tag: int = tag) -> None:
                result["run"] = drive(target, bench.feed, tag, "open", rate, seconds, 1.0)

            runner = th.Thread(target=load)
            runner.start()
            for _ in range(kills):
                time.sleep(seconds / (kills + 1))
                proc = stack.procs.pop(victim)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                time.sleep(1.0)
                stack.spawn(victim, args)
            runner.join()
            run = result["run"]
            late = sum(x > 5.0 for x in run.latencies)
            out[who] = {
                "sent": run.sent,
                "replies": run.replies,
                "lost": run.lost,
                "duplicates": run.unexpected_replies,
                "late_over_5s": late,
                "max_ms": round(1000 * max(run.latencies), 1) if run.latencies else None,
            }
            log(f"crash {who}: {out[who]}")
    finally:
        bench.stop()
    return out


RECEIVERS = {
    "plain": ("bench.plain_app:create_app()", {}),
    "today": ("webhook:create_app()", {}),
    "stream": ("bench.probe_receiver:create_app()", {"PROBE_STREAM": f"{STREAM}:recv"}),
    "stream-single": (
        "bench.probe_receiver:create_app()",
        {"PROBE_STREAM": f"{STREAM}:recv", "PROBE_RECEIVER_CLIENT": "single"},
    ),
    "stream-batched": (
        "bench.probe_receiver:create_app()",
        {"PROBE_STREAM": f"{STREAM}:recv", "PROBE_RECEIVER_CLIENT": "batched"},
    ),
}


def receivers(rounds: int, seconds: float) -> dict[str, Any]:
    """Each receiver's throughput against plain Flask's, on the same gunicorn settings, wrk
    runs interleaved (the order turns every round); the stream is emptied after every run."""
    from bench.common import BenchDatabase, log, median
    from bench.load import run_wrk
    from bench.receiver import WRK_CONNECTIONS, NoStub, signed_request
    from bench.stack import BenchStack
    from tests.support.stack import new_workdir

    body, headers = signed_request()
    db = BenchDatabase.create(flows=False)
    stack = BenchStack(database_url=db.url, stub=NoStub(), workdir=new_workdir())
    try:
        stack.start_redis()
        ports = {name: stack.start_app(name, app, env=env) for name, (app, env) in RECEIVERS.items()}
        for port in ports.values():  # first requests import lazily; not part of any figure
            run_wrk(f"http://127.0.0.1:{port}/webhook", body, headers, 1, WRK_CONNECTIONS)
        rps: dict[str, list[float]] = defaultdict(list)
        names = list(RECEIVERS)
        for i in range(rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                out = run_wrk(f"http://127.0.0.1:{ports[name]}/webhook", body, headers, seconds, WRK_CONNECTIONS)
                stack.flush_redis()
                rps[name].append(float(out.get("rps", 0.0)))
                log(f"receiver {name}: {out.get('rps')} req/s {out.get('error', '')}")
        ratios = {
            name: round(median(r / p for r, p in zip(rps[name], rps["plain"], strict=True)), 3)
            for name in names
            if name != "plain"
        }
        return {"rps": dict(rps), "ratio_to_plain": ratios}
    finally:
        stack.stop_all()
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    k = sub.add_parser("crash")
    k.add_argument("--kills", type=int, default=2)
    k.add_argument("--seconds", type=float, default=20.0)
    k.add_argument("--rate", type=float, default=40.0)
    k.add_argument("--mode", choices=MODES, default="sessionlock")
    v = sub.add_parser("receivers")
    v.add_argument("--rounds", type=int, default=5)
    v.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.command == "receivers":
        out = receivers(args.rounds, args.seconds)
    elif args.command == "crash":
        out = crash(args.kills, args.seconds, args.rate, args.mode)
    else:
        out = run(args.rounds, args.seconds)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
