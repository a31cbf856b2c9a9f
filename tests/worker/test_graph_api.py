"""GraphClient against the stub Graph API over real loopback HTTP (no mocks).

What goes over the wire is the contract with Meta, so these tests read it back from a
real server: URL, headers, exact body, and how each kind of failure is classified.
"""

from __future__ import annotations

import logging
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from settings import load_settings
from tests.support.graph_stub import GraphStub, StubControl, start_stub
from worker.graph_api import (
    PAIR_LIMIT_CAP_SECONDS,
    RETRY_CAP_SECONDS,
    GraphClient,
    GraphError,
    build_body,
    build_read_body,
    classify,
    retry_delay,
)

TOKEN = "EAAGsecret-token-0123456789"
PNID = "100000000000001"
PHONE = "+15550002222"
BSUID = "US.13491208655302741918"
TEXT = {"type": "text", "text": {"body": "Hello!", "preview_url": False}}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stub() -> Iterator[GraphStub]:
    with start_stub() as running:
        yield running


@pytest.fixture
def client(stub: GraphStub) -> Iterator[GraphClient]:
    with GraphClient(stub.url, TOKEN, connect_timeout=1.0, read_timeout=0.5) as c:
        yield c


def test_send_to_phone_posts_exact_request(stub: GraphStub, client: GraphClient) -> None:
    result = client.send(PNID, "15550002222", None, TEXT)

    (req,) = stub.requests()
    assert req.method == "POST"
    assert req.path == f"/v25.0/{PNID}/messages"
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": PHONE,
        "type": "text",
        "text": {"body": "Hello!", "preview_url": False},
    }
    assert result.wamid == req.wamid and result.wamid.startswith("wamid.")
    assert result.response["contacts"] == [{"input": PHONE, "wa_id": "15550002222"}]


def test_send_to_bsuid_uses_recipient(stub: GraphStub, client: GraphClient) -> None:
    interactive = {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Confirm?"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
        },
    }
    result = client.send(PNID, None, BSUID, interactive)

    (req,) = stub.requests()
    assert req.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "recipient": BSUID,
        **interactive,
    }
    assert "to" not in req.body
    assert result.wamid == req.wamid


def test_phone_wins_over_bsuid() -> None:
    body = build_body(PHONE, BSUID, TEXT)
    assert body["to"] == PHONE and "recipient" not in body


@pytest.mark.parametrize(
    ("to_phone", "to_user_id", "content"),
    [(None, None, TEXT), (PHONE, None, {"text": {}}), (PHONE, None, {**TEXT, "to": "+1"}), ("+", None, TEXT)],
)
def test_build_body_rejects_bad_input(to_phone: str | None, to_user_id: str | None, content: Any) -> None:
    with pytest.raises(ValueError):
        build_body(to_phone, to_user_id, content)


def test_mark_read(stub: GraphStub, client: GraphClient) -> None:
    client.mark_read(PNID, "wamid.IN1")
    (req,) = stub.requests()
    assert req.body == build_read_body("wamid.IN1")
    assert req.body == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1"}
    assert req.status == 200


@pytest.mark.parametrize(
    ("script", "disposition", "code", "http_status"),
    [
        ({"status": 500}, "retry", None, 500),
        ({"status": 502}, "retry", None, 502),
        ({"status": 429}, "retry", None, 429),
        ({"error": 130429, "http_status": 429}, "retry", 130429, 429),
        ({"error": 131000, "http_status": 500}, "retry", 131000, 500),
        ({"error": 131056, "http_status": 400}, "pair_limit", 131056, 400),
        ({"error": 131047, "http_status": 400}, "permanent", 131047, 400),
        ({"error": 100, "http_status": 400}, "permanent", 100, 400),
        ({"error": 132001, "http_status": 400}, "permanent", 132001, 400),
        ({"error": 190, "http_status": 401}, "auth", 190, 401),
        ({"error": 999999, "http_status": 400}, "permanent", 999999, 400),
        ({"error": 999999, "http_status": 503}, "retry", 999999, 503),
        ({"status": 404}, "permanent", None, 404),
        ({"status": 401}, "permanent", None, 401),
        ({"status": 200, "body": {"messaging_product": "whatsapp"}}, "retry", None, 200),
        ({"status": 200, "body": {"messages": [{}]}}, "retry", None, 200),
    ],
)
def test_failures_are_classified(
    stub: GraphStub,
    client: GraphClient,
    script: dict[str, Any],
    disposition: str,
    code: int | None,
    http_status: int,
) -> None:
    if "error" in script:
        stub.push_error(code=script["error"], http_status=script["http_status"])
    else:
        stub.push(**script)

    with pytest.raises(GraphError) as info:
        client.send(PNID, PHONE, None, TEXT)

    assert (info.value.disposition, info.value.code, info.value.http_status) == (disposition, code, http_status)
    # The script is used up: the next send goes through.
    assert client.send(PNID, PHONE, None, TEXT).wamid


def test_error_carries_details_and_maintenance_wait(stub: GraphStub, client: GraphClient) -> None:
    stub.push_error(code=131057, http_status=400, title="Account in maintenance", details="upgrading")
    with pytest.raises(GraphError) as info:
        client.send(PNID, PHONE, None, TEXT)
    assert info.value.disposition == "retry"
    assert info.value.details == "upgrading"
    assert "Account in maintenance" in info.value.title
    assert info.value.retry_after == 60.0


def test_read_timeout_is_unknown_outcome(stub: GraphStub, client: GraphClient) -> None:
    stub.push(hang=True)
    started = time.monotonic()
    with pytest.raises(GraphError) as info:
        client.send(PNID, PHONE, None, TEXT)
    assert info.value.disposition == "unknown_outcome"
    assert 0.4 < time.monotonic() - started < 3
    assert len(stub.requests()) == 1  # it did arrive: Graph may have accepted it


def test_stub_helpers_separate_messages_from_read_receipts(stub: GraphStub, client: GraphClient) -> None:
    client.mark_read(PNID, "wamid.IN1")
    client.send(PNID, PHONE, None, TEXT)
    assert [r.kind for r in stub.wait_for_count(2)] == ["mark_read", "message"]
    (only,) = stub.messages()
    assert only.recipient == PHONE and only.wamid
    assert stub.wait_for(lambda seen: all(r.status == 200 for r in seen), timeout=1)


def test_dropped_connection_is_unknown_outcome(stub: GraphStub, client: GraphClient) -> None:
    stub.push(drop=True)
    with pytest.raises(GraphError) as info:
        client.send(PNID, PHONE, None, TEXT)
    assert info.value.disposition == "unknown_outcome"
    assert client.send(PNID, PHONE, None, TEXT).wamid  # the pool recovers


def test_connection_refused_is_retry() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = GraphClient(f"http://127.0.0.1:{port}/v25.0", TOKEN, 1.0, 1.0)
    with client, pytest.raises(GraphError) as info:
        client.send(PNID, PHONE, None, TEXT)
    assert info.value.disposition == "retry"
    assert info.value.title == "could not connect"


def test_token_and_number_never_leak(stub: GraphStub, client: GraphClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # A server that echoes what it got must not make us repeat it.
    stub.push_error(code=100, http_status=400, title=f"bad token {TOKEN}", details=f"recipient {PHONE} / 15550002222")
    stub.push(status=500, body=f"gateway says {TOKEN} for 15550002222")
    stub.push(hang=True)
    errors = []
    for _ in range(3):
        with pytest.raises(GraphError) as info:
            client.send(PNID, PHONE, None, TEXT)
        errors.append(info.value)

    for error in errors:
        for text in (str(error), repr(error), error.title, error.details):
            assert TOKEN not in text
            assert "15550002222" not in text
        assert error.recipient == "***2222"
    assert "***2222" in str(errors[0])
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "graph send failed" in logged
    assert TOKEN not in logged and "15550002222" not in logged
    assert TOKEN not in repr(client) and TOKEN not in repr(client.auth)


def test_graph_error_survives_pickling() -> None:
    error = GraphError("pair_limit", 131056, 400, "(#131056) Pair rate limit hit", "", "***2222")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.disposition, copy.code, str(copy)) == ("pair_limit", 131056, str(error))


def test_classify_by_code_before_status() -> None:
    assert classify(130429, 400) == "retry"
    assert classify(131047, 500) == "permanent"
    assert classify(0, 200) == "auth"
    assert classify(None, None) == "unknown_outcome"


def test_retry_delay_bounds() -> None:
    for attempt in range(40):
        cap = min(RETRY_CAP_SECONDS, 2.0**attempt)
        assert 0 <= retry_delay("retry", attempt) <= cap
        assert retry_delay("retry", attempt, rng=lambda: 0.0) == 0
        assert retry_delay("retry", attempt, rng=lambda: 0.999999) == pytest.approx(cap, rel=1e-5)
    assert retry_delay("retry", 10_000) <= RETRY_CAP_SECONDS
    assert [retry_delay("pair_limit", a) for a in range(7)] == [1, 4, 16, 64, 256, 300, 300]
    assert retry_delay("pair_limit", 10_000) == PAIR_LIMIT_CAP_SECONDS
    for disposition in ("permanent", "auth"):
        with pytest.raises(ValueError):
            retry_delay(disposition, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        retry_delay("retry", -1)


def test_recipient_scoped_script_and_latency(stub: GraphStub, client: GraphClient) -> None:
    stub.push_error(code=131056, http_status=400, recipient="+15550009999")
    assert client.send(PNID, PHONE, None, TEXT).wamid  # another user is unaffected
    with pytest.raises(GraphError):
        client.send(PNID, "+15550009999", None, TEXT)

    stub.configure(latency=0.15)
    started = time.monotonic()
    client.send(PNID, PHONE, None, TEXT)
    assert time.monotonic() - started >= 0.15


def test_connections_are_reused_and_threads_share_one_client(stub: GraphStub, client: GraphClient) -> None:
    for _ in range(5):
        client.send(PNID, PHONE, None, TEXT)
    assert len({r.client_port for r in stub.requests()}) == 1

    stub.configure(latency=0.05)
    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(client.send, PNID, PHONE, None, TEXT) for _ in range(32)]
        wamids = [f.result().wamid for f in futures]
    assert len(set(wamids)) == 32
    assert len(stub.wait_for_count(37)) == 37


def test_from_settings() -> None:
    settings = load_settings(
        {
            "WHATSAPP_ACCESS_TOKEN": TOKEN,
            "WHATSAPP_API_URL": "http://127.0.0.1:1/v25.0/",
            "PARLEY_GRAPH_READ_TIMEOUT": "7",
        }
    )
    with GraphClient.from_settings(settings) as client:
        assert client.api_url == "http://127.0.0.1:1/v25.0"
        assert client.timeout == (settings.graph_connect_timeout, 7.0)


def test_stub_in_another_process_is_driven_over_http() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.graph_stub", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("GRAPH_STUB_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        control = StubControl(url.rsplit("/", 1)[0])
        control.push_error(code=130429, http_status=429)
        with GraphClient(url, TOKEN, 1.0, 2.0) as client:
            with pytest.raises(GraphError) as info:
                client.send(PNID, None, BSUID, TEXT)
            assert info.value.disposition == "retry"
            wamid = client.send(PNID, None, BSUID, TEXT).wamid
        seen = control.wait_for_count(2)
        assert [r.status for r in seen] == [429, 200]
        assert seen[1].wamid == wamid and seen[1].recipient == BSUID
        control.reset()
        assert control.requests() == []
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stdout.close()  # type: ignore[union-attr]
    assert proc.returncode == 0


class _Proxy:
    """A one-request HTTP forward proxy on loopback that answers as Graph would."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.request_line = ""

    def serve_one(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.request_line = data.split(b"\r\n", 1)[0].decode()
            body = b'{"messages": [{"id": "wamid.VIA_PROXY"}]}'
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )


def test_proxy_settings_from_the_environment_are_read_once_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = _Proxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = GraphClient("http://graph.invalid/v25.0", "test-token", 1.0, 2.0)
    monkeypatch.delenv("HTTP_PROXY")  # read at construction, not per call
    with ThreadPoolExecutor(1) as pool:
        served = pool.submit(proxy.serve_one)
        result = client.send("PNID", "15550001111", None, {"type": "text", "text": {"body": "hi"}})
        served.result(timeout=5)
    assert result.wamid == "wamid.VIA_PROXY"
    assert proxy.request_line == "POST http://graph.invalid/v25.0/PNID/messages HTTP/1.1"
    client.close()
