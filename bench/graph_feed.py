"""The stub Graph API (tests/support/graph_stub.py) as its own process, reporting each request as it arrives.

The test stub keeps every request in memory and is polled; at hundreds of requests a second
polling would cost the load driver more than the system under test. This subclass keeps
nothing and instead sends one datagram per request (``kind<TAB>recipient<TAB>arrived_at``)
to the driver's Unix socket; a Unix datagram socket never drops, it blocks the sender.

    python -m bench.graph_feed --feed /tmp/feed.sock [--latency 0.15]

prints ``GRAPH_STUB_URL=...`` and serves until SIGTERM. Latency is changed at run time with
``StubControl(base_url).configure(latency=...)`` as for the test stub.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.graph_stub import GraphStub, Script, StubControl, StubRequest, serve_until_signalled


class FeedStub(GraphStub):
    """A GraphStub that forwards each request to a datagram socket instead of keeping it."""

    def __init__(self, feed_path: str, **options: float | str | int) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._feed = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._feed_path = feed_path
        self._count = 0

    def _record(self, request: StubRequest) -> tuple[StubRequest, Script]:
        with self._lock:
            self._count += 1
            request.seq = self._count
        line = f"{request.kind}\t{request.recipient}\t{request.arrived_at:.6f}"
        # No driver listening (between runs): the request is still answered.
        with contextlib.suppress(OSError):
            self._feed.sendto(line.encode(), self._feed_path)
        return request, Script()

    def pending_scripts(self) -> int:
        return 0


@dataclass
class RemoteStub:
    """A FeedStub process; quacks like GraphStub for ``tests.support.stack.Stack`` (``url``)."""

    proc: subprocess.Popen[str]
    url: str

    @property
    def base_url(self) -> str:
        return self.url.rsplit("/", 1)[0]

    def configure(self, **config: float) -> None:
        StubControl(self.base_url).configure(**config)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_remote(feed_path: str, log_path: Path, latency: float = 0.0, cwd: Path | None = None) -> RemoteStub:
    """Start the stub process; its stderr (a killed client's broken pipes) goes to ``log_path``."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.graph_feed", "--feed", feed_path, "--latency", str(latency)],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("GRAPH_STUB_URL="):
        proc.kill()
        raise RuntimeError(f"graph stub did not start: {line!r}")
    return RemoteStub(proc, line.split("=", 1)[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--feed", required=True, help="Unix datagram socket of the load driver")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    serve_until_signalled(FeedStub(args.feed, latency=args.latency))


if __name__ == "__main__":
    main()
