"""Nothing assumes one host: receiver and worker on separate network hosts.

Three "hosts" on one bridge: the services host (this test process: Redis, Postgres behind
a TCP forwarder, the stub Graph API, all on the bridge address), a web host (gunicorn)
and a worker host (migrations, flow loading, a Celery worker). Each of the two is a
network namespace with its own loopback, so anything that quietly relied on 127.0.0.1 or
on a shared local file would fail here. A signed webhook goes to the web host's address
and a whole coffee order must come back through the stub.

Skipped, with the reason, only where namespaces cannot be made (not root, no iproute2,
no privilege); any other failure fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from conversation.models import ConversationState, Order
from tests.deploy.netns import CannotIsolate, TcpForwarder, Topology, net_namespace_of
from tests.support.database import ADMIN_URL, create_database, drop_database
from tests.support.graph_stub import GraphStub
from tests.support.services import service_missing
from tests.support.stack import wait_until
from tests.support.webhooks import ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN, contact, message, webhook
from webhook.signature import sign

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WEB_PORT = 8000
GUNICORN_WORKERS = 2
WORKER_CONCURRENCY = 2
TIMEOUT = 30


@pytest.fixture(scope="module")
def hosts() -> Iterator[Topology]:
    topology = Topology(roles=("web", "worker"))
    try:
        topology.create()
    except CannotIsolate as exc:
        topology.destroy()
        pytest.skip(f"cannot create network namespaces on this machine: {exc}")
    except BaseException:
        topology.destroy()
        raise
    try:
        yield topology
    finally:
        topology.destroy()


class Processes:
    """Background processes with logs, each in its own session so the group can be ended."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.workdir = Path(tempfile.mkdtemp(prefix="parley-netns-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def run(self, name: str, argv: list[str]) -> None:
        done = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.workdir.glob("*.log"))


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def test_conversation_with_receiver_and_worker_on_separate_hosts(hosts: Topology) -> None:
    if shutil.which("redis-server") is None:
        service_missing("redis-server (binary)", FileNotFoundError("redis-server"))
    try:
        direct_url = create_database()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    admin = make_url(ADMIN_URL)
    services_host = hosts.host_ip
    postgres = TcpForwarder((services_host, 0), (admin.host or "127.0.0.1", admin.port or 5432)).start()
    stub = GraphStub(host=services_host).start()
    redis_port = free_port(services_host)
    web_ip = hosts.ip_of("web")
    remote_db_url = make_url(direct_url).set(host=services_host, port=postgres.port).render_as_string(False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "WHATSAPP_", "DATABASE_", "CELERY_"))}
    env.update(
        PARLEY_ENV="test",
        DATABASE_URL=remote_db_url,
        CELERY_BROKER_URL=f"redis://{services_host}:{redis_port}/0",
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN,
        WHATSAPP_API_URL=stub.url,
        PARLEY_PUBLIC_URL=f"http://{web_ip}:{WEB_PORT}",
        PARLEY_WORKER_METRICS_PORT="0",
        PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    procs = Processes(env)
    db = create_engine(
        direct_url.replace("postgresql://", "postgresql+psycopg://", 1),
        connect_args={"application_name": "netns-test"},
    )
    try:
        procs.start(
            "redis",
            [
                *("redis-server", "--bind", services_host, "--port", str(redis_port), "--save", ""),
                *("--appendonly", "no", "--protected-mode", "no", "--maxmemory-policy", "noeviction"),
            ],
        )
        wait_until(lambda: reachable(services_host, redis_port), 10, "redis on the services host")
        _converse(hosts, procs, stub, db, web_ip)
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
        db.dispose()
        stub.stop()
        postgres.stop()
        drop_database(direct_url)


def _converse(hosts: Topology, procs: Processes, stub: GraphStub, db: Any, web_ip: str) -> None:
    # The worker host migrates and loads the flows over the network, as the compose
    # one-shot service does.
    procs.run("migrate", hosts.command("worker", [str(BIN / "alembic"), "upgrade", "head"]))
    procs.run(
        "flows", hosts.command("worker", [str(BIN / "flask"), "--app", "webhook", "templates", "load", "templates/"])
    )
    web = procs.start(
        "web",
        hosts.command(
            "web",
            [
                *(str(BIN / "gunicorn"), "webhook:create_app()", "--bind", f"{web_ip}:{WEB_PORT}"),
                *("--workers", str(GUNICORN_WORKERS), "--timeout", "30"),
            ],
        ),
    )
    worker = procs.start(
        "worker",
        hosts.command(
            "worker",
            [
                *(str(BIN / "celery"), "-A", "worker", "worker", "-c", str(WORKER_CONCURRENCY)),
                *("-Q", "inbound,outbound,maintenance", "--without-gossip", "--without-mingle", "--loglevel", "INFO"),
            ],
        ),
    )
    base = f"http://{web_ip}:{WEB_PORT}"

    def ready() -> bool:
        try:
            return requests.get(f"{base}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    # /readyz answers 200 only when the web host reaches both the broker and the database.
    wait_until(ready, TIMEOUT, "the receiver in its namespace to be ready")

    # The processes really live apart: own network namespaces, and their 127.0.0.1 is not
    # the services host's (the database is unreachable there).
    here = net_namespace_of(os.getpid())
    assert len({here, net_namespace_of(web.pid), net_namespace_of(worker.pid)}) == 3
    probe = "import socket,sys; socket.create_connection(('127.0.0.1', 5432), 1)"
    for role in hosts.roles:
        isolated = subprocess.run(hosts.command(role, [sys.executable, "-c", probe]), capture_output=True, timeout=10)
        assert isolated.returncode != 0, f"{role}: 127.0.0.1:5432 is reachable, the namespace is not isolated"

    user = "1555" + str(uuid.uuid4().int)[:7]

    def say(text: str | None = None, tap: tuple[str, str] | None = None) -> None:
        body = webhook([message(user, text=text, tap=tap)], [contact(user)])
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, APP_SECRET)}
        assert requests.post(f"{base}/webhook", data=raw, headers=headers, timeout=10).status_code == 200

    def replies(n: int) -> list[Any]:
        def mine(rs: list[Any]) -> list[Any]:
            return [r for r in rs if r.kind == "message" and r.recipient in {user, "+" + user}]

        stub.wait_for(lambda rs: len(mine(rs)) >= n, TIMEOUT)
        return mine(stub.requests())

    def body_text(request: Any) -> str:
        body = request.body
        return body["text"]["body"] if body["type"] == "text" else body["interactive"]["body"]["text"]

    say("hi")
    assert replies(1)[0].body["interactive"]["action"]["buttons"][0]["reply"]["id"] == "new_order"
    say(tap=("new_order", "New Order"))
    assert body_text(replies(2)[-1]) == "What would you like to order?"
    say(tap=("coffee", "Coffee"))
    assert body_text(replies(3)[-1]) == "How many Coffee? (Enter a number)"
    say("2")
    assert body_text(replies(4)[-1]) == "You're ordering 2 x Coffee. Shall I place the order?"
    say(tap=("confirm", "Confirm"))
    final = body_text(replies(5)[-1])
    number = re.search(r"ORD-\d{6}", final)
    assert number, final

    def finished() -> bool:
        with db.connect() as conn:
            live = conn.execute(select(ConversationState).where(ConversationState.user_key == user)).first()
            order = conn.execute(select(Order).where(Order.user_key == user)).first()
        return live is None and order is not None and f"ORD-{order.id:06d}" == number.group(0)

    wait_until(finished, 10, "the conversation to end with the order stored")

    # The connection budget of docs/OPERATIONS.md: at most one Postgres connection per
    # process that does database work (gunicorn workers for /readyz, Celery children).
    time.sleep(0.5)
    with db.connect() as conn:
        held = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name <> 'netns-test'"
            )
        ).scalar_one()
    assert held <= GUNICORN_WORKERS + WORKER_CONCURRENCY, (
        f"{held} connections for {GUNICORN_WORKERS}+{WORKER_CONCURRENCY} processes"
    )
    print(f"postgres connections held by web+worker: {held}")
