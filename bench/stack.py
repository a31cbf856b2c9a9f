"""The real stack for benchmarks: tests/support/stack.py's ``Stack`` with the knobs a benchmark turns.

Differences from the e2e stack, all deployment settings (no code of parley changes):

- workers are described by :class:`WorkerSpec` (processes, queues, pool) and can be
  replaced between runs without restarting Redis, gunicorn or the stub;
- Beat runs with parley's production intervals (the e2e stack shortens the outbox sweep
  to 2 s, which under overload would hand the same customers on again and again);
- workers log at Celery's default level (WARNING), as ``celery -A worker worker`` does;
- the receiver runs with the settings scripts/dev.sh and the e2e stack use (gunicorn,
  ``GUNICORN_ARGS``), and any other WSGI app can be started beside it on the same settings
  (``bench.plain_app``, the receiver's ceiling; ``bench.sync_bot``, the end-to-end baseline).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import psutil

from bench.common import tree
from tests.support.ports import free_port
from tests.support.stack import BIN, GUNICORN_ARGS, Stack, wait_until

ALL_QUEUES = "inbound,outbound,maintenance"


@dataclass(frozen=True)
class WorkerSpec:
    """One ``celery -A worker worker`` process: its pool size, queues and pool type."""

    name: str
    concurrency: int
    queues: str = ALL_QUEUES
    pool: str = "prefork"

    def args(self) -> list[str]:
        args = [
            str(BIN / "celery"),
            "-A",
            "worker",
            "worker",
            "-n",
            f"{self.name}@%h",
            "-c",
            str(self.concurrency),
            "-Q",
            self.queues,
            "-P",
            self.pool,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ]
        return args

    def describe(self) -> str:
        return f"{self.pool} -c {self.concurrency} -Q {self.queues}"


# The e2e stack's topology: two prefork workers of two processes each, every queue.
DEFAULT_WORKERS = (WorkerSpec("w1", 2), WorkerSpec("w2", 2))


def topology(specs: tuple[WorkerSpec, ...]) -> str:
    return " + ".join(s.describe() for s in specs)


@dataclass
class BenchStack(Stack):
    workers: tuple[WorkerSpec, ...] = DEFAULT_WORKERS
    extra_env: dict[str, str] = field(default_factory=dict)
    apps: dict[str, int] = field(default_factory=dict)  # name -> port of started WSGI apps

    def env(self) -> dict[str, str]:
        env = super().env()
        for name in ("PARLEY_SWEEP_INTERVAL_SECONDS", "PARLEY_SWEEP_GRACE_SECONDS"):
            env.pop(name, None)
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Redis, the parley receiver, the workers and Beat (flows must already be loaded)."""
        self.start_redis()
        self.start_app("web", "webhook:create_app()", self.web_port)
        self.start_workers(self.workers)
        self.spawn(
            "beat",
            [str(BIN / "celery"), "-A", "celery_beat", "beat", "--schedule", str(self.workdir / "beat-schedule")],
        )

    def stop_all(self) -> None:
        """Clients of Redis first, Redis last: a worker whose broker vanished lingers in its reconnect loop."""
        for name in [n for n in self.procs if n != "redis"]:
            self.stop(name)
        self.stop("redis")

    def start_app(
        self,
        name: str,
        app: str,
        port: int | None = None,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> int:
        """A WSGI app under gunicorn with the recommended settings (plus ``extra`` arguments and
        ``env`` variables over the stack's); returns its port."""
        port = port or free_port()
        args = [str(BIN / "gunicorn"), app, "--bind", f"127.0.0.1:{port}", *GUNICORN_ARGS, *extra]
        self.spawn(name, args, **(env or {}))
        self.apps[name] = port
        wait_until(lambda: self._port_up(port), 30, f"gunicorn {name}")
        return port

    @staticmethod
    def _port_up(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    def start_workers(self, specs: tuple[WorkerSpec, ...]) -> None:
        self.workers = specs
        for spec in specs:
            self.spawn(f"worker-{spec.name}", spec.args())

    def stop_workers(self) -> None:
        for name in [n for n in self.procs if n.startswith("worker-")]:
            self.stop(name)

    def replace_workers(self, specs: tuple[WorkerSpec, ...]) -> None:
        self.stop_workers()
        self.flush_redis()
        self.start_workers(specs)

    def flush_redis(self) -> None:
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=5) as s:
            s.sendall(b"FLUSHALL\r\n")
            s.recv(64)

    def redis_queue_length(self, queue: str = "inbound") -> int:
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=5) as s:
            s.sendall(f"LLEN {queue}\r\n".encode())
            reply = s.recv(64)
        return int(reply[1:].split(b"\r\n", 1)[0]) if reply.startswith(b":") else -1

    # --- processes, for CPU accounting, memory and profiles ----------------------------

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def worker_pids(self) -> list[int]:
        return [p.pid for n, p in self.procs.items() if n.startswith("worker-")]

    def group(self, prefix: str) -> list[psutil.Process]:
        out: list[psutil.Process] = []
        for name, proc in self.procs.items():
            if name.startswith(prefix):
                out.extend(tree(proc.pid))
        return out
