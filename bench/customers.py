"""Simulated customers walking the new_order flow, like people: each waits for its reply.

The driver posts signed webhooks to the receiver and learns of each reply from the Graph
stub's feed (``bench.graph_feed``): the moment the reply's Graph request arrives. Latency
is webhook POST → that Graph request. Two ways to load the system:

- ``open``: a new message every 1/rate seconds from whichever customer is free (a customer
  whose reply came back), or from a new customer when none is free; the offered rate does
  not bend to the system's speed, so queueing shows in the latency.
- ``closed``: ``concurrency`` customers at once, each sending its next message the moment
  its reply arrives (a finished customer is replaced): the system's saturation throughput.

Every run ends by itself: sending stops after ``seconds``, then the driver waits up to
``drain`` seconds for outstanding replies; whatever is still missing is reported lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bench.common import latency_summary, percentile
from bench.load import http_post
from tests.support.webhooks import APP_SECRET, contact, message, webhook
from webhook.signature import sign

# The full new_order flow: 5 messages, each answered by exactly one reply (plus a read receipt).
FLOW: tuple[dict[str, Any], ...] = (
    {"text": "hi"},
    {"tap": ("new_order", "New Order")},
    {"tap": ("coffee", "Coffee")},
    {"text": "2"},
    {"tap": ("confirm", "Confirm")},
)


# An open-loop run stops offering load once this many seconds' worth of messages wait.
MAX_BACKLOG_SECONDS = 3.0


class Feed:
    """The driver's end of the stub's Unix datagram socket."""

    def __init__(self, path: str) -> None:
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
        self.sock.bind(path)
        self.sock.setblocking(False)

    def drain_nowait(self) -> int:
        """Discard whatever arrived between runs (late read receipts and the like)."""
        n = 0
        while True:
            try:
                self.sock.recv(512)
                n += 1
            except BlockingIOError:
                return n

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@dataclass
class Customer:
    phone: str
    step: int = 0
    sent_at: float | None = None  # wall clock of the outstanding message's POST


@dataclass
class E2EResult:
    mode: str
    load: float  # offered msg/s (open) or customers at once (closed)
    seconds: float
    warmup: float
    sent: int = 0
    replies: int = 0
    read_receipts: int = 0
    unexpected_replies: int = 0
    post_failed: int = 0
    lost: int = 0
    overloaded: bool = False  # open loop stopped early: the backlog passed ``max_backlog``
    customers: int = 0
    finished_flows: int = 0
    drain_seconds: float = 0.0
    throughput: float = 0.0  # replies per second in the measured window
    latencies: list[float] = field(default_factory=list)  # POST → reply at the stub, seconds
    post_latencies: list[float] = field(default_factory=list)  # the webhook's own answer time

    def summary(self) -> dict[str, Any]:
        posts = self.post_latencies
        return {
            "mode": self.mode,
            "load": self.load,
            "seconds": self.seconds,
            "sent": self.sent,
            "replies": self.replies,
            "read_receipts": self.read_receipts,
            "lost": self.lost,
            "overloaded": self.overloaded,
            "unexpected_replies": self.unexpected_replies,
            "post_failed": self.post_failed,
            "customers": self.customers,
            "finished_flows": self.finished_flows,
            "drain_seconds": round(self.drain_seconds, 2),
            "throughput": round(self.throughput, 1),
            **latency_summary(self.latencies),
            "webhook_p50_ms": round(percentile([p * 1000 for p in posts], 50), 2),
            "webhook_p99_ms": round(percentile([p * 1000 for p in posts], 99), 2),
            "webhook_over_1s_pct": round(100.0 * sum(p > 1.0 for p in posts) / len(posts), 3) if posts else 0.0,
        }


class Driver:
    """One run of simulated customers against a running stack (see the module docstring)."""

    def __init__(self, port: int, feed: Feed, run_tag: int) -> None:
        self.port = port
        self.feed = feed
        self.prefix = f"19{run_tag % 1000:03d}"
        self.customers: dict[str, Customer] = {}
        self.free: deque[Customer] = deque()
        self.sending = False
        self.window = (0.0, 0.0)
        self.arrivals: list[float] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.result = E2EResult("", 0, 0, 0)
        self.closed = False

    # --- customers ---------------------------------------------------------------------

    def _new_customer(self) -> Customer:
        phone = f"{self.prefix}{len(self.customers):07d}"
        customer = Customer(phone)
        self.customers[phone] = customer
        self.result.customers += 1
        return customer

    def _send(self, customer: Customer) -> None:
        said = FLOW[customer.step]
        payload = webhook([message(customer.phone, **said)], [contact(customer.phone)])
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}
        customer.sent_at = time.time()
        self.result.sent += 1
        task = asyncio.create_task(self._post(customer, body, headers))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post(self, customer: Customer, body: bytes, headers: dict[str, str]) -> None:
        started = time.time()
        try:
            status = await http_post(self.port, "/webhook", body, headers, timeout=30)
        except (OSError, TimeoutError):
            status = 0
        if status != 200:
            # Meta would retry a refused webhook; for the benchmark it is counted and the
            # customer dropped (it would otherwise wait forever for a reply).
            self.result.post_failed += 1
            customer.sent_at = None
            return
        self.result.post_latencies.append(time.time() - started)

    def _ready(self, customer: Customer) -> None:
        """The customer got its reply; it speaks again now (closed) or when its turn comes (open)."""
        if customer.step >= len(FLOW):
            self.result.finished_flows += 1
            if self.closed and self.sending:
                self._send(self._new_customer())
            return
        if self.closed:
            if self.sending:
                self._send(customer)
        else:
            self.free.append(customer)

    # --- the stub's feed ---------------------------------------------------------------

    def _on_feed(self) -> None:
        while True:
            try:
                data = self.feed.sock.recv(512)
            except BlockingIOError:
                return
            kind, recipient, arrived_text = data.decode().split("\t")
            if kind != "message":
                self.result.read_receipts += 1
                continue
            customer = self.customers.get(recipient.lstrip("+"))
            if customer is None or customer.sent_at is None:
                self.result.unexpected_replies += 1
                continue
            arrived = float(arrived_text)
            if self.window[0] <= customer.sent_at <= self.window[1]:
                self.result.latencies.append(arrived - customer.sent_at)
            self.arrivals.append(arrived)
            self.result.replies += 1
            customer.sent_at = None
            customer.step += 1
            self._ready(customer)

    def outstanding(self) -> int:
        return sum(1 for c in self.customers.values() if c.sent_at is not None)

    # --- a run -------------------------------------------------------------------------

    async def run(self, mode: str, load: float, seconds: float, warmup: float, drain: float = 60.0) -> E2EResult:
        """``mode`` "open" (``load`` msg/s) or "closed" (``load`` customers at once)."""
        self.closed = mode == "closed"
        self.result = E2EResult(mode, load, seconds, warmup)
        loop = asyncio.get_running_loop()
        self.feed.drain_nowait()
        loop.add_reader(self.feed.sock.fileno(), self._on_feed)
        try:
            start = time.time()
            self.window = (start + warmup, start + seconds)
            self.sending = True
            if self.closed:
                for _ in range(int(load)):
                    self._send(self._new_customer())
                await asyncio.sleep(seconds)
            else:
                await self._open_loop(load, seconds)
            self.sending = False
            end = min(time.time(), start + seconds)
            drained_at = time.monotonic()
            deadline = drained_at + drain
            while self.outstanding() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            self.result.drain_seconds = time.monotonic() - drained_at
            # Read receipts go out before their reply; give the last ones a moment.
            settle = time.monotonic() + 2.0
            while self.result.read_receipts < self.result.sent - self.result.post_failed and time.monotonic() < settle:
                await asyncio.sleep(0.05)
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=10)
        finally:
            loop.remove_reader(self.feed.sock.fileno())
        self.result.lost = self.outstanding()
        measured = [t for t in self.arrivals if self.window[0] <= t <= end]
        self.result.throughput = len(measured) / max(end - self.window[0], 1e-6)
        return self.result

    async def _open_loop(self, rate: float, seconds: float) -> None:
        """Offer ``rate`` msg/s; stop early once the system is ``MAX_BACKLOG_SECONDS`` behind.

        Past that point the run only measures how long a queue the driver built, and
        draining it would cost the suite minutes: the run is marked ``overloaded``.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        max_backlog = max(10, int(rate * MAX_BACKLOG_SECONDS))
        for i in range(int(rate * seconds)):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if i % 10 == 0 and self.outstanding() > max_backlog:
                self.result.overloaded = True
                break
            customer = self.free.popleft() if self.free else self._new_customer()
            self._send(customer)
        await asyncio.sleep(max(0.0, start + seconds - loop.time()))


def drive(port: int, feed: Feed, run_tag: int, mode: str, load: float, seconds: float, warmup: float) -> E2EResult:
    """One run, synchronously (a fresh event loop)."""
    driver = Driver(port, feed, run_tag)
    return asyncio.run(driver.run(mode, load, seconds, warmup))
