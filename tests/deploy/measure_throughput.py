"""How many customer messages one Celery worker process handles end to end (docs/OPERATIONS.md).

    .venv/bin/python -m tests.deploy.measure_throughput --concurrency 1 4 8 --latency 0 0.2

Real processes, as in tests/support/stack.py: a private Redis, a fresh Postgres database,
gunicorn (2 workers), ONE ``celery -A worker worker -c C`` and the stub Graph API
answering after ``latency`` seconds (Graph's own answer time; 0 shows the CPU ceiling).
N customers each send "hi" as a signed webhook; each message costs one inbound task,
one outbox hand-off, one Graph send (the menu) and one read receipt. The rate is
replies per second between the 10 % and 90 % marks of the replies (start-up and tail
excluded). On a shared machine wall-clock rates move with the neighbours' load, so the
CPU each part spent per message (worker processes, gunicorn, Postgres backends, Redis;
from /proc) is reported as well: it does not. A measurement script, not a test: it
prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from tests.support.database import create_database, drop_database, migrate
from tests.support.graph_stub import GraphStub
from tests.support.stack import BIN, Stack, new_workdir, wait_until
from tests.support.webhooks import APP_SECRET, contact, message, webhook
from webhook.signature import sign

TICK = os.sysconf("SC_CLK_TCK")
BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone: its CPU is lost to the count, which then errs low
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def process_tree(root: int) -> list[int]:
    """``root`` and its children (prefork pool, gunicorn workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == root:
            children.append(int(stat.parent.name))
    return [root, *children]


def measure(concurrency: int, latency: float, n: int) -> dict[str, float]:
    url = create_database()
    migrate(url)
    stub = GraphStub(latency=latency).start()
    stack = Stack(database_url=url, stub=stub, workdir=new_workdir())
    try:
        stack.start_redis()
        stack.spawn("web", [str(BIN / "gunicorn"), "webhook:create_app()", "--bind", f"127.0.0.1:{stack.web_port}"])
        subprocess.run(
            [str(BIN / "flask"), "--app", "webhook", "templates", "load", "templates/"],
            env=stack.env(),
            check=True,
            capture_output=True,
        )
        stack.spawn(
            "worker",
            [
                *(str(BIN / "celery"), "-A", "worker", "worker", "-c", str(concurrency)),
                *(
                    "-Q",
                    "inbound,outbound,maintenance",
                    "--without-gossip",
                    "--without-mingle",
                    "--loglevel",
                    "WARNING",
                ),
            ],
        )
        wait_until(stack.web_up, 30, "gunicorn")
        users = ["1777" + str(uuid.uuid4().int)[:7] for _ in range(n)]

        def post(user: str) -> None:
            body = json.dumps(webhook([message(user, "hi")], [contact(user)])).encode()
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}
            r = requests.post(f"{stack.base_url}/webhook", data=body, headers=headers, timeout=10)
            r.raise_for_status()

        # Warm-up: the worker's pool is up and has its connections before the clock runs.
        post(users[0])
        stub.wait_for(lambda rs: any(r.kind == "message" for r in rs), 60)
        stub.reset()
        stub.configure(latency=latency)
        # pre-ping: a shared machine may restart Postgres under us (other people's tests).
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_pre_ping=True)

        def groups() -> dict[str, list[int]]:
            with engine.connect() as conn:
                backends = list(conn.execute(text(BACKENDS)).scalars())
            return {
                "worker": process_tree(stack.procs["worker"].pid),
                "web": process_tree(stack.procs["web"].pid),
                "postgres": backends,  # a pool may open more connections under load
                "redis": [stack.procs["redis"].pid],
            }

        cpu_before = {pid: cpu_seconds([pid]) for pids in groups().values() for pid in pids}
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, users[1:]))
        posted = time.monotonic() - started
        stub.wait_for(lambda rs: sum(r.kind == "message" for r in rs) >= n - 1, 600)
        stub.wait_for(lambda rs: sum(r.kind == "mark_read" for r in rs) >= n - 1, 60)
        cpu = {name: sum(cpu_seconds([p]) - cpu_before.get(p, 0.0) for p in pids) for name, pids in groups().items()}
        replies = sorted(r.answered_at or r.arrived_at for r in stub.requests() if r.kind == "message")
        lo, hi = replies[int(0.1 * len(replies))], replies[int(0.9 * len(replies)) - 1]
        counted = int(0.9 * len(replies)) - int(0.1 * len(replies)) - 1
        # Phase 2: Meta's status webhooks (sent, delivered, read: up to 3 per reply) are
        # inbound tasks too. One "delivered" per reply, timed and costed the same way.
        sent = [(r.wamid, r.recipient.lstrip("+")) for r in stub.requests() if r.kind == "message" and r.wamid]
        ts = str(int(time.time()))

        def post_status(item: tuple[str, str]) -> None:
            payload = webhook(
                statuses=[{"id": item[0], "status": "delivered", "timestamp": ts, "recipient_id": item[1]}]
            )
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}
            requests.post(f"{stack.base_url}/webhook", data=body, headers=headers, timeout=10).raise_for_status()

        def delivered() -> int:
            with engine.connect() as conn:
                return conn.execute(
                    text("SELECT count(*) FROM outbound_messages WHERE status = 'delivered'")
                ).scalar_one()

        status_before = cpu_seconds(process_tree(stack.procs["worker"].pid))
        status_started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post_status, sent))
        wait_until(lambda: delivered() >= len(sent), 600, "statuses applied", interval=0.2)
        status_seconds = time.monotonic() - status_started
        status_cpu = cpu_seconds(process_tree(stack.procs["worker"].pid)) - status_before
        with engine.connect() as conn:
            held = len(conn.execute(text(BACKENDS)).all())
        engine.dispose()
        return {
            "concurrency": concurrency,
            "graph_latency_s": latency,
            "messages": n - 1,
            "post_rate_per_s": round((n - 1) / posted, 1),
            "replies_per_s": round(counted / (hi - lo), 1) if hi > lo else float("nan"),
            "graph_calls_per_s": round(2 * counted / (hi - lo), 1) if hi > lo else float("nan"),
            "pg_connections": held,
            **{f"cpu_ms_per_message_{name}": round(1000 * spent / (n - 1), 1) for name, spent in cpu.items()},
            "statuses_per_s": round(len(sent) / status_seconds, 1),
            "cpu_ms_per_status_worker": round(1000 * status_cpu / len(sent), 1),
            "load_average_1m": os.getloadavg()[0],
        }
    finally:
        stack.stop_all()
        stub.stop()
        drop_database(url)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    # SIGTERM ends the run through the finally blocks: no stray processes or databases.
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"cpus={os.cpu_count()}", flush=True)
    for latency in args.latency:
        for concurrency in args.concurrency:
            print(json.dumps(measure(concurrency, latency, args.messages)), flush=True)


if __name__ == "__main__":
    main()
