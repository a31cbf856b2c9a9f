"""The receiver's ceiling: a plain Flask endpoint that answers 200 to any POST /webhook.

Served by gunicorn with exactly the receiver's settings (``bench.stack.GUNICORN_ARGS``),
so the ratio parley/plain isolates what parley's receiver does per request: read the
body, verify the signature, parse JSON, publish to Redis, log.

    gunicorn "bench.plain_app:create_app()" --workers 2
"""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhook")
    def receive() -> tuple[str, int]:
        return "ok", 200

    return app
