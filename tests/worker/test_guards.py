"""Startup guards: each unsafe configuration is refused with one line naming the cause.

The broker checks run against a private redis-server started here (never the machine's
6379), whose eviction policy the tests change; the last tests start the real worker,
Beat and gunicorn processes and read what they print.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.ports import free_port
from tests.support.services import service_missing
from tests.support.stack import wait_until
from worker.celery_app import app
from worker.guards import (
    StartRefused,
    check_broker_eviction,
    check_settings,
    check_texts,
    check_visibility_timeout,
    longest_unacked_seconds,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.redis]

PRODUCTION = {
    "PARLEY_ENV": "production",
    "DATABASE_URL": "postgresql://parley@db.internal/parley",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "WHATSAPP_APP_SECRET": "s3cret",
    "WHATSAPP_VERIFY_TOKEN": "verify",
    "WHATSAPP_ACCESS_TOKEN": "token",
    "PARLEY_ADMIN_TOKEN": "admin-token-for-tests",
}


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own (noeviction to start with); yields its URL."""
    if shutil.which("redis-server") is None:
        service_missing("redis-server (binary)", FileNotFoundError("redis-server"))
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        wait_until(lambda: _pings(client), 10, "private redis")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def policy(private_redis: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis)
    yield client
    client.config_set("maxmemory-policy", "noeviction")
    client.close()


# --- settings ------------------------------------------------------------------------------


def test_production_without_secrets_is_refused_in_one_line() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "WHATSAPP_APP_SECRET"}
    with pytest.raises(StartRefused) as refused:
        check_settings(env)
    assert "\n" not in str(refused.value) and "WHATSAPP_APP_SECRET" in str(refused.value)


def test_production_with_every_secret_starts() -> None:
    assert check_settings(PRODUCTION).production


def test_broken_text_overrides_refuse_the_start_in_one_line(tmp_path: Path) -> None:
    check_texts(check_settings({"PARLEY_ENV": "test", "PARLEY_TEMPLATES_DIR": str(tmp_path)}))  # no overrides: fine
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "en.yaml").write_text('texts:\n  retry_title: "Try again, please, one more time"\n')
    with pytest.raises(StartRefused) as refused:
        check_texts(check_settings({"PARLEY_ENV": "test", "PARLEY_TEMPLATES_DIR": str(tmp_path)}))
    assert "\n" not in str(refused.value) and "texts.retry_title" in str(refused.value)


def test_fault_injection_is_refused_in_production_only() -> None:
    with pytest.raises(StartRefused, match=r"fault injection is set .*PARLEY_FAULT_POINT"):
        check_settings({**PRODUCTION, "PARLEY_FAULT_POINT": "after_send"})
    assert not check_settings({"PARLEY_ENV": "test", "PARLEY_FAULT_POINT": "after_send"}).production


# --- broker eviction -------------------------------------------------------------------------


def test_noeviction_broker_passes(private_redis: str, policy: redis.Redis) -> None:
    assert check_broker_eviction(private_redis) == "noeviction"


@pytest.mark.parametrize("evicting", ["allkeys-lru", "volatile-lru", "allkeys-random", "volatile-ttl"])
def test_an_evicting_broker_is_refused(private_redis: str, policy: redis.Redis, evicting: str) -> None:
    policy.config_set("maxmemory-policy", evicting)
    with pytest.raises(StartRefused, match=f"maxmemory-policy {evicting}.*set maxmemory-policy noeviction") as refused:
        check_broker_eviction(private_redis)
    assert "\n" not in str(refused.value)


def test_an_unreachable_broker_is_left_to_celery_reconnect() -> None:
    assert check_broker_eviction(f"redis://127.0.0.1:{free_port()}/0", wait=0.3) is None


def test_a_non_redis_broker_is_not_checked() -> None:
    assert check_broker_eviction("sqla+sqlite:///var/broker.sqlite3") is None


# --- visibility timeout ----------------------------------------------------------------------


def test_the_shipped_visibility_timeout_outlasts_every_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:6399/0")
    needed, why = longest_unacked_seconds(app)
    assert needed >= max(t.time_limit or 0 for n, t in app.tasks.items() if n.startswith("parley."))
    assert "parley." in why
    check_visibility_timeout(app)  # the shipped configuration passes


@pytest.mark.parametrize("timeout", [60, 300, 569])
def test_a_visibility_timeout_a_task_can_outlive_is_refused(monkeypatch: pytest.MonkeyPatch, timeout: int) -> None:
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:6399/0")
    options = {**app.conf.broker_transport_options, "visibility_timeout": timeout}
    monkeypatch.setattr(app.conf, "broker_transport_options", options)
    with pytest.raises(StartRefused, match=f"visibility_timeout {timeout}s is not longer") as refused:
        check_visibility_timeout(app)
    assert "\n" not in str(refused.value) and "second worker" in str(refused.value)


# --- the real processes ------------------------------------------------------------------------


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(ROOT)}
    return subprocess.run(args, cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("kind", ["worker", "beat"])
def test_worker_and_beat_refuse_an_evicting_broker(
    private_redis: str, policy: redis.Redis, tmp_path: Path, kind: str
) -> None:
    policy.config_set("maxmemory-policy", "allkeys-lru")
    if kind == "worker":
        args = [str(BIN / "celery"), "-A", "worker", "worker", "-c", "1", "--without-gossip", "--without-mingle"]
    else:
        args = [str(BIN / "celery"), "-A", "celery_beat", "beat", "--schedule", str(tmp_path / "schedule")]
    done = _run(args, {"PARLEY_ENV": "test", "CELERY_BROKER_URL": private_redis, "PARLEY_WORKER_METRICS_PORT": "0"})
    assert done.returncode == 2, done.stderr[-2000:]
    refusals = [line for line in done.stderr.splitlines() if line.startswith("parley: ")]
    assert refusals == [
        "parley: refusing to start: the Redis broker has maxmemory-policy allkeys-lru, which evicts queued tasks;"
        " set maxmemory-policy noeviction"
    ]


def test_worker_without_production_secrets_refuses_in_one_line() -> None:
    done = _run([str(BIN / "celery"), "-A", "worker", "worker"], {"PARLEY_ENV": "production"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("parley: refusing to start in production:")
    assert "Traceback" not in done.stderr


def test_receiver_without_production_secrets_refuses_in_one_line() -> None:
    port = free_port()
    done = _run(
        [str(BIN / "gunicorn"), "webhook:create_app()", "--bind", f"127.0.0.1:{port}"], {"PARLEY_ENV": "production"}
    )
    assert done.returncode != 0  # gunicorn: "App failed to load", no respawn loop
    reasons = [line for line in done.stderr.splitlines() if line.startswith("refusing to start in production:")]
    assert len(reasons) == 1 and "WHATSAPP_APP_SECRET" in reasons[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
