"""The receiver of the batched-pipeline probe: check the signature, ``XADD`` the raw body, answer.

It imports neither the domain nor Celery. ``PROBE_STREAM`` names the stream;
``PROBE_RECEIVER_CLIENT`` picks how it talks to Redis: unset, one pooled client; "single",
a connection per request thread (no pool checkout); "batched", one writer thread per
process (``StreamWriter``). ``bench/probe_run.py receivers`` measures them against plain Flask.

    gunicorn "bench.probe_receiver:create_app()"
"""

from __future__ import annotations

import os
import queue
import threading

import redis
from flask import Flask, request

from bench.probe_stream import BATCH, STREAM

SIGNATURE_HEADER = "X-Hub-Signature-256"


class StreamWriter:
    """Natural batching in the receiver: request threads hand their bodies to one writer
    thread, which ``XADD``s whatever is waiting in one pipeline (one round trip) and then
    wakes each request with the outcome; a request answers only once its entry is in Redis."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client, self.stream = client, stream
        self.waiting: queue.SimpleQueue[tuple[bytes, threading.Event, list[bool]]] = queue.SimpleQueue()
        self.started = False
        self.lock = threading.Lock()

    def add(self, body: bytes) -> bool:
        if not self.started:
            with self.lock:  # started lazily: a thread made before gunicorn forks would not exist in the worker
                if not self.started:
                    threading.Thread(target=self.run, daemon=True).start()
                    self.started = True
        done, outcome = threading.Event(), [False]
        self.waiting.put((body, done, outcome))
        return done.wait(5.0) and outcome[0]

    def run(self) -> None:
        while True:
            items = [self.waiting.get()]
            while len(items) < BATCH:
                try:
                    items.append(self.waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    for body, _, _ in items:
                        pipe.xadd(self.stream, {"b": body})
                    pipe.execute()
                ok = True
            except redis.RedisError:
                ok = False
            for _, done, outcome in items:
                outcome[0] = ok
                done.set()


def create_app() -> Flask:
    """The receiver of the sketch: verify, ``XADD``, answer. It imports neither the domain nor Celery.

    ``PROBE_RECEIVER_CLIENT``: unset, one pooled client; "single", a connection per request
    thread (no pool checkout); "batched", one writer thread per process (``StreamWriter``)."""
    from settings import get_settings
    from webhook.signature import verify

    settings = get_settings()
    stream = os.environ.get("PROBE_STREAM", STREAM)
    how = os.environ.get("PROBE_RECEIVER_CLIENT", "")
    pooled = redis.Redis.from_url(settings.broker_url)
    own = threading.local()
    writer = StreamWriter(pooled, stream)

    def add(body: bytes) -> bool:
        if how == "batched":
            return writer.add(body)
        if how == "single":
            if not hasattr(own, "r"):
                own.r = redis.Redis.from_url(settings.broker_url, single_connection_client=True)
            own.r.xadd(stream, {"b": body})
        else:
            pooled.xadd(stream, {"b": body})
        return True

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    @app.post("/webhook")
    def receive() -> tuple[str, int]:
        body = request.get_data()
        if not verify(body, request.headers.get(SIGNATURE_HEADER), settings.app_secret):
            return "bad signature", 403
        try:
            stored = add(body)
        except redis.RedisError:
            stored = False
        if not stored:
            return "broker unavailable", 503  # Meta retries; nothing was acknowledged
        return "ok", 200

    return app
