"""The whole parley stack as real processes, for end-to-end tests.

gunicorn (receiver), two Celery worker processes, a private Redis server (so a test can
stop the broker without touching the machine's), a fresh Postgres database, and the stub
Graph API on loopback. Tests talk to it the way Meta does: signed webhook POSTs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from webhook.signature import sign

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
APP_SECRET = "e2e-app-secret"
VERIFY_TOKEN = "e2e-verify-token"
ACCESS_TOKEN = "e2e-access-token"
PHONE_NUMBER_ID = "100000000000001"


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def _spawn(self, name: str, args: list[str], **env: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(
            args, cwd=ROOT, env={**self.env(), **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_redis(self) -> None:
        self._spawn(
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
        wait_until(self._redis_up, 10, "private redis")

    def _redis_persistence(self) -> list[str]:
        if not self.redis_aof:
            return ["--appendonly", "no"]
        data = self.workdir / "redis-data"
        data.mkdir(exist_ok=True)
        return ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(data)]

    def _redis_up(self) -> bool:
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
        self._spawn(
            "web",
            [str(BIN / "gunicorn"), "webhook:create_app()", "--bind", f"127.0.0.1:{self.web_port}", *GUNICORN_ARGS],
        )
        for n, pool in enumerate(WORKER_POOLS, start=1):
            self._spawn(
                f"worker{n}",
                worker_command(f"e2e{n}@%h", pool),
                PARLEY_WORKER_METRICS_PORT=str(self.worker_metrics_ports[n - 1]),
            )
        self.start_beat("beat")
        wait_until(self._web_up, 30, "gunicorn")

    def start_beat(self, name: str) -> None:
        """A Beat process named ``name`` with a schedule file of its own."""
        schedule = str(self.workdir / f"{name}-schedule")
        self._spawn(
            name, [str(BIN / "celery"), "-A", "celery_beat", "beat", "--loglevel", "INFO", "--schedule", schedule]
        )

    def _web_up(self) -> bool:
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


def message(
    user: str,
    text: str | None = None,
    tap: tuple[str, str] | None = None,
    wamid: str | None = None,
    ts: int | None = None,
    bsuid: str | None = None,
) -> dict[str, Any]:
    """One inbound message item (phone ``user``; ``bsuid`` alone makes a username user)."""
    item: dict[str, Any] = {"id": wamid or f"wamid.E2E{uuid.uuid4().hex}", "timestamp": str(ts or int(time.time()))}
    if user:
        item["from"] = user
    if tap is not None:
        item["type"] = "interactive"
        item["interactive"] = {"type": "button_reply", "button_reply": {"id": tap[0], "title": tap[1]}}
    else:
        item["type"] = "text"
        item["text"] = {"body": text or ""}
    return item


def contact(user: str, bsuid: str | None = None, name: str = "Test User") -> dict[str, Any]:
    c: dict[str, Any] = {"profile": {"name": name}}
    if user:
        c["wa_id"] = user
    if bsuid:
        c["user_id"] = bsuid
    return c


def webhook(
    messages: Iterable[dict[str, Any]] = (),
    contacts: Iterable[dict[str, Any]] = (),
    statuses: Iterable[dict[str, Any]] = (),
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
    }
    if messages:
        value["messages"] = list(messages)
        value["contacts"] = list(contacts)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }


def combine(*payloads: dict[str, Any]) -> dict[str, Any]:
    """Several webhook bodies as one batched POST (entries side by side)."""
    return {"object": "whatsapp_business_account", "entry": [e for p in payloads for e in p["entry"]]}


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="parley-e2e-"))


def require_redis_server() -> None:
    """The stack runs a private redis-server; without the binary there is no stack."""
    import shutil

    from tests.conftest import service_missing

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
