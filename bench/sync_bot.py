"""The end-to-end baseline: a synchronous bot that does all the work inside the webhook request.

Issue 7 asks that parley (receiver → Redis → Celery workers → Postgres → Graph) beat, by
1.5× in throughput, "a synchronous bot that does all the work inside the webhook request
(the way most Python WhatsApp libraries work)" on the same flow and machine. This is that
bot, kept as plain as such a bot is, and built from parley's own domain code so that the
flow, the database work and the Graph calls are exactly the ones parley does. Per signed
``POST /webhook``, in the request:

1. verify ``X-Hub-Signature-256`` (``webhook.signature.verify``), 403 if it does not match;
2. parse the body (``conversation.payload.parse_payload``);
3. each message: ``conversation.turn.process_event`` in its own
   ``conversation.db.session_scope()`` (dedupe claim, locked contact, engine, state, the
   outbox rows), committed; then that customer's replies (read receipt included) go out
   through the Graph API at once with ``worker.sender.drain`` and one
   ``worker.graph_api.GraphClient`` per process; delivery statuses are applied likewise;
4. answer 200. An exception answers 500 and Meta retries (the wamid claim makes that safe).

No broker, no worker, no queue: a slow Graph API or database holds the request, and the
gunicorn process (or thread) with it. ``drain`` keeps parley's one-sender-per-customer
lease: a request that finds the customer's lease held answers at once, and the request
holding it sends the new replies too before letting go. A send that must be retried
stays ``pending`` in the outbox (the bot has no one to retry it; parley's Beat sweep would).
Served by gunicorn on exactly the receiver's settings (``bench.stack.GUNICORN_ARGS``: its config file, 2
workers), so whatever worker class that config sets applies to both::

    gunicorn -c gunicorn.conf.py "bench.sync_bot:create_app()" --workers 2 --timeout 30

Logging: parley's handler at WARNING, the level the benchmark's Celery workers run the
same code at (its INFO lines per message and per send would otherwise cost the bot only).
"""

from __future__ import annotations

import logging

from flask import Flask, request

from conversation.db import session_scope, use_engine_options
from conversation.engine_settings import engine_config
from conversation.logs import configure_logging
from conversation.outbox import apply_status
from conversation.payload import parse_payload
from conversation.turn import process_event
from settings import get_settings
from webhook.signature import verify
from worker.graph_api import GraphClient
from worker.sender import drain

SIGNATURE_HEADER = "X-Hub-Signature-256"


def create_app() -> Flask:
    """The bot; gunicorn calls this once in each worker process (no ``--preload``)."""
    settings = get_settings()
    use_engine_options(pool_pre_ping=False)  # as parley's workers: no ping round trip per transaction
    configure_logging(settings, level=logging.WARNING)
    config = engine_config(settings)
    client = GraphClient.from_settings(settings)  # one connection pool per process
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    @app.post("/webhook")
    def receive() -> tuple[str, int]:
        body = request.get_data()
        if not verify(body, request.headers.get(SIGNATURE_HEADER), settings.app_secret):
            return "bad signature", 403
        parsed = parse_payload(body)
        for event in parsed.messages:
            with session_scope() as session:
                result = process_event(session, event, config, mark_as_read=settings.mark_as_read)
            # Committed: now send this customer's replies, in the request.
            if result.outbox_ids or result.duplicate:
                drain(result.user_key, client, settings.send_max_attempts)
        for status in parsed.statuses:
            with session_scope() as session:
                apply_status(session, status)
        return "ok", 200

    return app
