"""The receiver's views: handshake, POST verification and queueing, health and readiness.

These are logic tests of the views: ENQUEUE is a fake that records what it is given, so
no broker is involved. The one exception, ``test_unreachable_broker_answers_503``, runs
the default ENQUEUE against a closed port. The real-broker pipeline (gunicorn, Redis,
workers) is tested in tests/e2e.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import settings as settings_module
from settings import Settings, load_settings
from tests.worker.dispatch_helpers import celery_pointer
from webhook import create_app
from webhook.signature import sign
from worker.dispatch import QueueUnavailable

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
SECRET = "test-app-secret"
TOKEN = "test-verify-token"
ENV = {"PARLEY_ENV": "test", "WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_VERIFY_TOKEN": TOKEN}


class FakeQueue:
    """Records every enqueued body; can be told to fail like a broker that is down."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.error: Exception | None = None

    def __call__(self, raw_body: str) -> None:
        if self.error is not None:
            raise self.error
        self.bodies.append(raw_body)


def make_settings(**env: str) -> Settings:
    return load_settings({**ENV, **env})


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def app(queue: FakeQueue) -> Flask:
    return create_app({"SETTINGS": make_settings(), "ENQUEUE": queue, "TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, body: bytes, signature: str | None = "sign", **headers: str) -> Any:
    if signature == "sign":
        signature = sign(body, SECRET)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/webhook", data=body, headers=headers, content_type="application/json")


def fixture_bytes(name: str = "text_phone_user") -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


# --- GET handshake -----------------------------------------------------------------------


def test_handshake_echoes_the_raw_challenge(client: FlaskClient) -> None:
    args = {"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "1158201444"}
    response = client.get("/webhook", query_string=args)
    assert response.status_code == 200
    assert response.data == b"1158201444"
    assert response.mimetype == "text/plain"


@pytest.mark.parametrize(
    "args",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "tëst", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": TOKEN, "hub.challenge": "1"},
        {"hub.verify_token": TOKEN, "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_refused(client: FlaskClient, args: dict[str, str]) -> None:
    response = client.get("/webhook", query_string=args)
    assert response.status_code == 403
    assert response.data != b"1"


def test_handshake_without_challenge_is_400(client: FlaskClient) -> None:
    response = client.get("/webhook", query_string={"hub.mode": "subscribe", "hub.verify_token": TOKEN})
    assert response.status_code == 400


# --- POST --------------------------------------------------------------------------------


def test_signed_payload_is_queued_verbatim(client: FlaskClient, queue: FakeQueue) -> None:
    body = fixture_bytes("batch")
    response = post(client, body)
    assert response.status_code == 200
    assert response.get_json() == {"status": "queued"}
    assert queue.bodies == [body.decode("utf-8")]


def test_non_ascii_body_verifies_over_the_raw_bytes(client: FlaskClient, queue: FakeQueue) -> None:
    # Both spellings Meta may produce: raw UTF-8 (äöå, emoji) and \u-escaped.
    raw = '{"object":"whatsapp_business_account","entry":[],"x":"äöå ☕ \U0001f600"}'.encode()
    escaped = json.dumps(json.loads(raw)).encode()
    for body in (raw, escaped):
        assert post(client, body).status_code == 200
    assert queue.bodies == [raw.decode(), escaped.decode()]


def test_bad_signature_is_403_and_nothing_queued(client: FlaskClient, queue: FakeQueue) -> None:
    body = fixture_bytes()
    assert post(client, body, signature=sign(body, "not-the-secret")).status_code == 403
    assert post(client, body, signature="sha256=" + "0" * 64).status_code == 403
    assert post(client, body, signature="garbage").status_code == 403
    assert post(client, body + b"\n", signature=sign(body, SECRET)).status_code == 403
    assert queue.bodies == []


def test_missing_signature_is_401(client: FlaskClient, queue: FakeQueue) -> None:
    assert post(client, fixture_bytes(), signature=None).status_code == 401
    assert queue.bodies == []


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe{}", b"", b"[" * 50_000])
def test_signed_non_json_is_400(client: FlaskClient, queue: FakeQueue, body: bytes) -> None:
    assert post(client, body).status_code == 400
    assert queue.bodies == []


@pytest.mark.parametrize("body", [b'{"object": "page", "entry": []}', b"[]", b'"text"', b"{}"])
def test_other_objects_are_acknowledged_not_queued(client: FlaskClient, queue: FakeQueue, body: bytes) -> None:
    response = post(client, body)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ignored"}
    assert queue.bodies == []


@pytest.fixture
def small_client(queue: FakeQueue) -> FlaskClient:
    app = create_app({"SETTINGS": make_settings(PARLEY_MAX_BODY_BYTES="200"), "ENQUEUE": queue})
    return app.test_client()


def test_oversized_body_is_413(small_client: FlaskClient, queue: FakeQueue) -> None:
    body = b'{"object":"whatsapp_business_account","entry":[],"pad":"' + b"x" * 300 + b'"}'
    assert post(small_client, body).status_code == 413
    assert queue.bodies == []


def test_oversized_chunked_body_is_413(small_client: FlaskClient, queue: FakeQueue) -> None:
    # No Content-Length: the limit is enforced while reading, not trusted to the header.
    body = b'{"object":"whatsapp_business_account","pad":"' + b"x" * 300 + b'"}'
    response = small_client.post(
        "/webhook",
        input_stream=_Stream(body),
        headers={"X-Hub-Signature-256": sign(body, SECRET), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert queue.bodies == []


def test_body_of_exactly_the_limit_is_accepted(small_client: FlaskClient, queue: FakeQueue) -> None:
    head, tail = b'{"object":"whatsapp_business_account","pad":"', b'"}'
    body = head + b"x" * (200 - len(head) - len(tail)) + tail
    assert len(body) == 200
    assert post(small_client, body).status_code == 200
    response = small_client.post(
        "/webhook",
        input_stream=_Stream(body),
        headers={"X-Hub-Signature-256": sign(body, SECRET), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200
    assert queue.bodies == [body.decode()] * 2


class _Stream(io.BytesIO):
    """An input stream handing out small chunks, like a chunked upload arriving.

    With ``Transfer-Encoding: chunked`` Werkzeug ignores any Content-Length, so the
    receiver sees a length-less stream and must enforce the limit while reading.
    """

    def read(self, size: int | None = -1) -> bytes:
        return super().read(7 if size is None or size < 0 else min(size, 7))


@pytest.mark.parametrize("error", [QueueUnavailable("broker down"), ConnectionError("reset"), RuntimeError("x")])
def test_queue_failure_is_503_never_200(client: FlaskClient, queue: FakeQueue, error: Exception) -> None:
    queue.error = error
    response = post(client, fixture_bytes())
    assert response.status_code == 503
    assert queue.bodies == []


def test_log_lines_hold_no_body_signature_or_secret(
    client: FlaskClient, queue: FakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    body = fixture_bytes()
    signature = sign(body, SECRET)
    post(client, body)
    post(client, body, signature="sha256=" + "0" * 64)
    queue.error = QueueUnavailable(f"redis://:{SECRET}@host")
    post(client, body)
    logged = caplog.text
    assert logged  # something was logged, and none of it is sensitive
    for secret in (SECRET, signature[7:], "0" * 64, "Sheena", "order", "redis://"):
        assert secret not in logged


# --- health ------------------------------------------------------------------------------


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def _down() -> None:
    raise ConnectionRefusedError("postgresql://parley:hunter2@db/parley")


def _slow() -> None:
    time.sleep(10)


def readiness_client(checks: dict[str, Callable[[], object]], queue: FakeQueue) -> FlaskClient:
    return create_app({"SETTINGS": make_settings(), "ENQUEUE": queue, "READINESS_CHECKS": checks}).test_client()


def test_readyz_ok_when_every_check_passes(queue: FakeQueue) -> None:
    response = readiness_client({"broker": lambda: None, "database": lambda: None}, queue).get("/readyz")
    assert response.status_code == 200


def test_readyz_names_the_failed_dependency_without_its_url(queue: FakeQueue) -> None:
    response = readiness_client({"broker": lambda: None, "database": _down}, queue).get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["broker"] == "ok" and checks["database"].startswith("failed")
    assert b"hunter2" not in response.data and b"postgresql" not in response.data


def test_readyz_does_not_wait_for_a_hung_check(monkeypatch: pytest.MonkeyPatch, queue: FakeQueue) -> None:
    monkeypatch.setattr("webhook.health.CHECK_TIMEOUT_SECONDS", 0.2)
    started = time.monotonic()
    response = readiness_client({"database": _slow}, queue).get("/readyz")
    assert response.status_code == 503 and response.get_json()["checks"] == {"database": "timeout"}
    assert time.monotonic() - started < 2


# --- app factory -------------------------------------------------------------------------


def test_production_without_secrets_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "WHATSAPP_APP_SECRET", "WHATSAPP_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARLEY_ENV", "production")
    settings_module.get_settings.cache_clear()
    try:
        with pytest.raises(settings_module.SettingsError, match="refusing to start in production"):
            create_app()
    finally:
        settings_module.get_settings.cache_clear()


def test_default_enqueue_is_the_dispatcher() -> None:
    from worker.dispatch import enqueue_payload

    assert create_app({"SETTINGS": make_settings()}).config["ENQUEUE"] is enqueue_payload


# --- the real enqueue against a broker that is down -----------------------------------------

CLOSED_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def celery_on_closed_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the one Celery app at a closed port, then restore it (pools included)."""
    from worker.celery_app import app as celery

    if importlib.util.find_spec("worker.tasks") is None:  # tasks.py not written yet
        fake = types.ModuleType("worker.tasks")
        fake.process_payload = celery.task(name="parley.inbound.process_payload")(lambda raw: None)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "worker.tasks", fake)
    with celery_pointer(monkeypatch) as point:
        point(CLOSED_BROKER)
        yield


@pytest.mark.usefixtures("celery_on_closed_port")
def test_unreachable_broker_answers_503() -> None:
    app = create_app({"SETTINGS": make_settings(CELERY_BROKER_URL=CLOSED_BROKER)})
    started = time.monotonic()
    response = post(app.test_client(), fixture_bytes())
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    # kombu retries the connect for broker_connection_timeout (4 s) with 2 s sleeps.
    assert elapsed < 10
