"""A stub Graph API: a real HTTP server on loopback that records and scripts answers.

In a test::

    with start_stub() as stub:
        client = GraphClient(stub.url, "token", 1.0, 2.0)
        stub.push_error(code=130429, http_status=429)     # next request fails
        ...
        stub.wait_for_count(2, timeout=5)

In another process: ``python -m tests.support.graph_stub --port 8999`` prints one line
``GRAPH_STUB_URL=http://127.0.0.1:8999/v25.0`` and serves until SIGTERM/SIGINT; drive it
with ``StubControl("http://127.0.0.1:8999")`` (same push/push_error/configure/reset/
requests/messages/wait_for API) or over HTTP: ``GET /_stub/requests[?after=SEQ]``,
``POST /_stub/script`` (one script object or a list), ``POST /_stub/reset``,
``POST /_stub/config`` (``{"latency": 0.15, "hang_seconds": 30, "expect_token": "..."}``).

Only the standard library, so the stub starts anywhere the tests run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GRAPH_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<phone_number_id>[^/]+)/messages$")


@dataclass
class Script:
    """One scripted answer. ``recipient``/``kind`` restrict which request consumes it."""

    status: int = 200
    body: Any = None  # JSON answer; None: Graph's success shape, or plain text for errors
    delay: float = 0.0  # seconds before answering, on top of the stub's latency
    hang: bool = False  # read the request, never answer (until hang_seconds pass)
    drop: bool = False  # read the request, close the connection without answering
    recipient: str | None = None
    kind: str | None = None  # "message" | "mark_read"

    def matches(self, recipient: str | None, kind: str) -> bool:
        return self.recipient in (None, recipient) and self.kind in (None, kind)


def error_script(
    code: int,
    http_status: int = 400,
    title: str | None = None,
    details: str | None = None,
    **kwargs: Any,
) -> Script:
    """A Graph-shaped error answer (as Meta documents it)."""
    error = {
        "message": f"(#{code}) {title or 'Stub error'}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or f"stub error {code}"},
        "fbtrace_id": "Stub" + uuid.uuid4().hex[:16],
    }
    return Script(status=http_status, body={"error": error}, **kwargs)


@dataclass
class StubRequest:
    """One request the stub received, and what it answered (None: hung, dropped, pending)."""

    seq: int
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    arrived_at: float  # time.time()
    client_port: int
    version: str
    phone_number_id: str
    kind: str  # "message" | "mark_read"
    recipient: str | None
    status: int | None = None
    wamid: str | None = None
    answered_at: float | None = None


class _Waiting:
    """wait_for/wait_for_count over whatever ``requests()`` returns."""

    def requests(self) -> list[StubRequest]:
        raise NotImplementedError

    def _pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def messages(self) -> list[StubRequest]:
        """Sends only: read receipts left out, as most assertions are about replies."""
        return [r for r in self.requests() if r.kind == "message"]

    def wait_for(self, predicate: Callable[[list[StubRequest]], bool], timeout: float = 5.0) -> list[StubRequest]:
        """Block until ``predicate(requests)`` holds; return the requests. AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests()
            if predicate(seen):
                return seen
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"stub: condition not met within {timeout}s; {len(seen)} requests seen")
            self._pause(min(left, 0.05))

    def wait_for_count(self, n: int, timeout: float = 5.0) -> list[StubRequest]:
        return self.wait_for(lambda seen: len(seen) >= n, timeout)


class GraphStub(_Waiting):
    """The server. Thread-safe; ``start()`` it (or use ``start_stub()``), ``stop()`` when done."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = "v25.0",
        latency: float = 0.0,
        hang_seconds: float = 30.0,
        expect_token: str | None = None,
    ) -> None:
        self.host, self.version = host, version
        self.latency, self.hang_seconds, self.expect_token = latency, hang_seconds, expect_token
        self._lock = threading.Condition()
        self._requests: list[StubRequest] = []
        self._script: list[Script] = []
        self._stopping = threading.Event()
        self._live: set[tuple[socket.socket, threading.Thread]] = set()
        self._server = _Server((host, port), _Handler)
        self._server.stub = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="graph-stub", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """What WHATSAPP_API_URL should be: base plus the Graph version."""
        return f"{self.base_url}/{self.version}"

    def start(self) -> GraphStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release hung handlers and idle keep-alive connections."""
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            live = list(self._live)
        for conn, _ in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes a handler blocked reading
        for _, thread in live:
            thread.join(timeout=2)
        self._server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> GraphStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- controls ---------------------------------------------------------------------
    def push(self, status: int = 200, body: Any = None, **kwargs: Any) -> None:
        """Queue one scripted answer (FIFO). kwargs: delay, hang, drop, recipient, kind."""
        self.push_script(Script(status=status, body=body, **kwargs))

    def push_error(self, code: int, http_status: int = 400, **kwargs: Any) -> None:
        """Queue a Graph error answer. kwargs: title, details, delay, recipient, kind."""
        self.push_script(error_script(code, http_status, **kwargs))

    def push_script(self, script: Script) -> None:
        with self._lock:
            self._script.append(script)

    def configure(self, **config: Any) -> None:
        """Set ``latency`` (s per answer), ``hang_seconds``, ``expect_token`` (None: any)."""
        unknown = set(config) - {"latency", "hang_seconds", "expect_token"}
        if unknown:
            raise ValueError(f"unknown stub settings {sorted(unknown)}")
        with self._lock:
            for name, value in config.items():
                setattr(self, name, value)

    def reset(self) -> None:
        """Forget requests and pending scripts; settings go back to no latency, any token."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self.latency, self.expect_token = 0.0, None

    def requests(self) -> list[StubRequest]:
        with self._lock:
            return list(self._requests)

    def pending_scripts(self) -> int:
        with self._lock:
            return len(self._script)

    def _pause(self, seconds: float) -> None:
        with self._lock:
            self._lock.wait(seconds)  # woken early by every new request or answer

    # -- used by the handler ----------------------------------------------------------
    def _record(self, request: StubRequest) -> tuple[StubRequest, Script]:
        with self._lock:
            request.seq = len(self._requests) + 1
            self._requests.append(request)
            script = next((s for s in self._script if s.matches(request.recipient, request.kind)), None)
            if script is None:
                script = Script()
            else:
                self._script.remove(script)
            self._lock.notify_all()
            return request, script

    def _answered(self, request: StubRequest, status: int | None, wamid: str | None = None) -> None:
        with self._lock:
            request.status, request.wamid, request.answered_at = status, wamid, time.time()
            self._lock.notify_all()


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops SYNs when 32 sender threads connect at once.
    request_queue_size = 128
    daemon_threads = True
    stub: GraphStub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Graph: lets tests see connection reuse
    timeout = 60  # idle keep-alive connections end on their own
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per request), a stall no real Graph API adds.
    disable_nagle_algorithm = True
    server: _Server

    @property
    def stub(self) -> GraphStub:
        return self.server.stub

    def setup(self) -> None:
        super().setup()
        with self.stub._lock:
            self.stub._live.add((self.connection, threading.current_thread()))

    def finish(self) -> None:
        with self.stub._lock:
            self.stub._live.discard((self.connection, threading.current_thread()))
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read stub.requests(); stderr noise helps nobody

    def _read_json(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _answer(self, status: int, body: Any) -> None:
        if isinstance(body, str):
            data, ctype = body.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path != "/_stub/requests":
            self._answer(404, {"error": "not found"})
            return
        after = int(dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("after", 0))
        self._answer(200, [asdict(r) for r in self.stub.requests() if r.seq > after])

    def do_POST(self) -> None:
        body = self._read_json()
        if self.path == "/_stub/script":
            for item in body if isinstance(body, list) else [body]:
                self.stub.push_script(Script(**item))
            self._answer(200, {"pending": self.stub.pending_scripts()})
        elif self.path == "/_stub/reset":
            self.stub.reset()
            self._answer(200, {"ok": True})
        elif self.path == "/_stub/config":
            self.stub.configure(**(body or {}))
            self._answer(200, {"ok": True})
        elif match := GRAPH_PATH.match(self.path):
            self._graph(match, body)
        else:
            self._answer(404, {"error": {"message": "Unknown path", "code": 100}})

    def _graph(self, match: re.Match[str], body: Any) -> None:
        payload = body if isinstance(body, dict) else {}
        kind = "mark_read" if payload.get("status") == "read" else "message"
        request, script = self.stub._record(
            StubRequest(
                seq=0,
                method="POST",
                path=self.path,
                headers=dict(self.headers.items()),
                body=body,
                arrived_at=time.time(),
                client_port=self.client_address[1],
                version=match["version"],
                phone_number_id=match["phone_number_id"],
                kind=kind,
                recipient=payload.get("to") or payload.get("recipient"),
            )
        )
        stub = self.stub
        if script.drop:
            self.close_connection = True  # the server closes the socket: no answer at all
            return
        if script.hang:
            stub._stopping.wait(stub.hang_seconds)
            self.close_connection = True
            return
        if stub._stopping.wait(stub.latency + script.delay):
            self.close_connection = True
            return
        if stub.expect_token is not None and self.headers.get("Authorization") != f"Bearer {stub.expect_token}":
            script = error_script(190, 401, title="Invalid OAuth access token")
        status, answer, wamid = script.status, script.body, None
        if answer is None and 200 <= status < 300:
            wamid, answer = _success(payload, kind)
        elif answer is None:
            answer = f"stub: scripted HTTP {status}"  # no JSON: a gateway's error page
        elif isinstance(answer, dict):
            messages = answer.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                wamid = messages[0].get("id")
        # Record first: a client that got the answer must already find it in requests().
        stub._answered(request, status, wamid)
        self._answer(status, answer)


def _success(payload: dict[str, Any], kind: str) -> tuple[str | None, dict[str, Any]]:
    """Graph's success shape (as Meta documents it) with a fresh wamid."""
    if kind == "mark_read":
        return None, {"success": True}
    wamid = "wamid.STUB" + uuid.uuid4().hex.upper()
    if payload.get("to"):
        contact = {"input": payload["to"], "wa_id": re.sub(r"\D", "", str(payload["to"]))}
    else:
        contact = {"input": payload.get("recipient"), "user_id": payload.get("recipient")}
    return wamid, {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}


@contextmanager
def start_stub(**options: Any) -> Iterator[GraphStub]:
    """A running stub for the ``with`` block; options as :class:`GraphStub`."""
    stub = GraphStub(**options).start()
    try:
        yield stub
    finally:
        stub.stop()


class StubControl(_Waiting):
    """Drives a stub in another process through its ``/_stub/*`` endpoints."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read())

    def push(self, status: int = 200, body: Any = None, **kwargs: Any) -> None:
        self.push_script(Script(status=status, body=body, **kwargs))

    def push_error(self, code: int, http_status: int = 400, **kwargs: Any) -> None:
        self.push_script(error_script(code, http_status, **kwargs))

    def push_script(self, script: Script) -> None:
        self._call("POST", "/_stub/script", asdict(script))

    def configure(self, **config: Any) -> None:
        self._call("POST", "/_stub/config", config)

    def reset(self) -> None:
        self._call("POST", "/_stub/reset", {})

    def requests(self, after: int = 0) -> list[StubRequest]:
        return [StubRequest(**item) for item in self._call("GET", f"/_stub/requests?after={after}")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--version", default="v25.0")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer, e.g. 0.15")
    parser.add_argument("--expect-token", default=None, help="answer 401/190 to any other bearer token")
    args = parser.parse_args(argv)
    serve_until_signalled(GraphStub(args.host, args.port, args.version, args.latency, expect_token=args.expect_token))


def serve_until_signalled(stub: GraphStub) -> None:
    """Start ``stub``, print its URL for the parent process, serve until SIGTERM or SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stub.start()
    print(f"GRAPH_STUB_URL={stub.url}", flush=True)
    while not stop.wait(0.5):
        pass
    stub.stop()


if __name__ == "__main__":
    main()
