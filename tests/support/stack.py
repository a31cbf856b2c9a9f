"""The whole parley stack as real processes, for end-to-end tests.

gunicorn (receiver), two Celery worker processes, a private Redis server (so a test can
stop the broker without touching the machine's), a fresh Postgres database, and the stub
Graph API on loopback. Tests talk to it the way Meta does: signed webhook POSTs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.ports import free_port
from tests.support.webhooks import ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN
from webhook.signature import sign

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


# The production shape (docker-compose.yml): a prefork worker runs the engine and Beat's
# jobs, a threads sender talks to the Graph API.
WORKER_POOLS = (
    ("-c", "2", "-Q", "inbound,maintenance"),
    ("--pool", "threads", "-c", "16", "-Q", "outbound"),
)


# The receiver's recommended server settings (gunicorn.conf.py), two processes.
GUNICORN_ARGS = ("-c", "gunicorn.conf.py", "--workers", "2", "--timeout", "30")


def worker_command(name: str, pool: tuple[str, ...]) -> list[str]:
    return [
        str(BIN / "celery"), "-A", "worker", "worker", "-n", name, *pool,
        "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip


def node_name(prefix: str) -> str:
    """The node name Celery gives ``-n prefix@%h`` on this host."""
    return f"{prefix}@{socket.gethostname()}"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Stack:
    database_url: str
    stub: Any
    workdir: Path
    redis_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    # One /metrics port per Celery worker (worker1, worker2).
    worker_metrics_ports: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Worker process name (worker1, ...) → its Celery node name, for the health probe.
    nodes: dict[str, str] = field(default_factory=dict)
    # True: no Meta token and no WHATSAPP_API_URL, so replies go to the receiver's /sandbox.
    sandbox: bool = False
    # True: Redis persists every write (AOF, fsync always) in workdir, as production needs;
    # the reliability suite kills and restarts it.
    redis_aof: bool = False

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "WHATSAPP_"))}
        env.update(
            PARLEY_ENV="test",
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            WHATSAPP_APP_SECRET=APP_SECRET,
            WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
            WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN,
            WHATSAPP_API_URL=self.stub.url if self.stub is not None else "",
            PARLEY_PUBLIC_URL=self.base_url,
            PARLEY_GRAPH_READ_TIMEOUT="2",
            PARLEY_SWEEP_INTERVAL_SECONDS="2",
            PARLEY_SWEEP_GRACE_SECONDS="3",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            PARLEY_LOG_FORMAT="json",
            PARLEY_METRICS_DIR=str(self.workdir / "metrics"),
        )
        if self.sandbox:
            del env["WHATSAPP_ACCESS_TOKEN"], env["WHATSAPP_API_URL"]
        return env

    def spawn(self, name: str, args: list[str], **env: str) -> None:
        """Start ``args`` as this stack's process ``name`` (log in the workdir), on its env plus ``env``."""
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(
            args, cwd=ROOT, env={**self.env(), **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_redis(self) -> None:
        self.spawn(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *self._redis_persistence(),
                "--maxmemory-policy",
                "noeviction",
            ],
        )
        wait_until(self.redis_up, 10, "private redis")

    def _redis_persistence(self) -> list[str]:
        if not self.redis_aof:
            return ["--appendonly", "no"]
        data = self.workdir / "redis-data"
        data.mkdir(exist_ok=True)
        return ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(data)]

    def redis_up(self) -> bool:
        """The private redis-server answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop_redis(self) -> None:
        self.stop("redis")

    def start(self) -> None:
        self.start_redis()
        subprocess.run(
            [str(BIN / "flask"), "--app", "webhook", "templates", "load", "templates/"],
            cwd=ROOT,
            env=self.env(),
            check=True,
            capture_output=True,
        )
        self.spawn(
            "web",
            [str(BIN / "gunicorn"), "webhook:create_app()", "--bind", f"127.0.0.1:{self.web_port}", *GUNICORN_ARGS],
        )
        for n in range(1, len(WORKER_POOLS) + 1):
            self.start_worker(n)
        self.start_beat("beat")
        wait_until(self.web_up, 30, "gunicorn")
        self.wait_workers_consume(60)

    def probe_workers(self, timeout: float) -> dict[str, subprocess.CompletedProcess]:
        """Run the workers' health check (``python -m worker.health``, as compose does) on
        every worker at once; the finished processes by worker name."""
        running = {
            name: subprocess.Popen(
                [str(BIN / "python"), "-m", "worker.health", node, "--timeout", f"{timeout:g}"],
                cwd=ROOT,
                env=self.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name, node in self.nodes.items()
            if name in self.procs
        }
        done = {}
        for name, proc in running.items():
            out, _ = proc.communicate(timeout=timeout + 30)
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out)
        return done

    def wait_workers_consume(self, timeout: float) -> None:
        """Wait until a probe task makes a round trip through every worker: a worker that
        logged "ready" may still be connecting, and one that stopped consuming fails here."""
        results = self.probe_workers(timeout)
        failed = {name: r.stdout.strip() for name, r in results.items() if r.returncode != 0}
        if failed:
            raise AssertionError(f"workers not consuming after {timeout:g}s: {failed}")

    def start_worker(self, n: int) -> None:
        """Worker process ``worker{n}`` with the n-th pool of WORKER_POOLS (1-based)."""
        self.nodes[f"worker{n}"] = node_name(f"e2e{n}")
        self.spawn(
            f"worker{n}",
            worker_command(f"e2e{n}@%h", WORKER_POOLS[n - 1]),
            PARLEY_WORKER_METRICS_PORT=str(self.worker_metrics_ports[n - 1]),
        )

    def start_beat(self, name: str) -> None:
        """A Beat process named ``name`` with a schedule file of its own."""
        schedule = str(self.workdir / f"{name}-schedule")
        self.spawn(
            name, [str(BIN / "celery"), "-A", "celery_beat", "beat", "--loglevel", "INFO", "--schedule", schedule]
        )

    def web_up(self) -> bool:
        """gunicorn answers /healthz with 200."""
        try:
            return requests.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.workdir.glob("*.log"))

    # --- talking like Meta ----------------------------------------------------------

    def post(self, payload: dict | bytes, signature: str | None = "sign", **headers: str) -> requests.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h = {"Content-Type": "application/json", **headers}
        if signature == "sign":
            h["X-Hub-Signature-256"] = sign(body, APP_SECRET)
        elif signature is not None:
            h["X-Hub-Signature-256"] = signature
        return requests.post(f"{self.base_url}/webhook", data=body, headers=h, timeout=10)


# Every workdir made in this process: tests/conftest.py removes them when the session ends.
WORKDIRS: list[Path] = []


def new_workdir() -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="parley-e2e-"))
    WORKDIRS.append(workdir)
    return workdir


def discard_workdirs(keep_logs: bool) -> list[Path]:
    """Remove the workdirs made so far (Redis data, metrics files, logs); with ``keep_logs``
    leave each one's ``*.log`` files for a look after a failure. Returns the folders kept."""
    kept = []
    while WORKDIRS:
        workdir = WORKDIRS.pop()
        if not workdir.exists():
            continue
        logs = list(workdir.glob("*.log")) if keep_logs else []
        if not logs:
            shutil.rmtree(workdir, ignore_errors=True)
            continue
        for entry in workdir.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry not in logs:
                entry.unlink(missing_ok=True)
        kept.append(workdir)
    return kept


def require_redis_server() -> None:
    """The stack runs a private redis-server; without the binary there is no stack."""
    import shutil

    from tests.support.services import service_missing

    if shutil.which("redis-server") is None:
        service_missing("redis-server (binary)", FileNotFoundError("redis-server"))


@contextmanager
def started(factory: type[Stack], database_url: str, stub: Any) -> Iterator[Stack]:
    """A running stack (of ``factory``) on ``database_url`` with ``stub``; stopped after."""
    stub.start()
    running = factory(database_url=database_url, stub=stub, workdir=new_workdir())
    try:
        running.start()
        yield running
    finally:
        running.stop_all()
        stub.stop()
