"""``/webhook``: Meta's verification handshake and event notifications.

The POST path only verifies and queues: no database, no HTTP calls, one ``json.loads``
to read ``object``. It answers 200 only once the payload is in the broker, 503 when the
broker refused it (Meta then retries for up to 7 days). Log lines carry sizes and
outcomes, never the body, the signature or a secret.
"""

from __future__ import annotations

import hmac
import json
import logging

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from conversation.logs import bind, clear_context, webhook_correlation_id
from webhook import metrics
from webhook.signature import verify

log = logging.getLogger(__name__)
bp = Blueprint("receiver", __name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
WABA_OBJECT = "whatsapp_business_account"
_CHUNK = 64 * 1024


@bp.get("/webhook")
def handshake() -> Response | tuple[Response, int]:
    settings = current_app.config["PARLEY_SETTINGS"]
    token = request.args.get("hub.verify_token", "")
    # Bytes, so a non-ASCII token compares in constant time instead of raising.
    token_ok = hmac.compare_digest(token.encode("utf-8"), settings.verify_token.encode("utf-8"))
    if request.args.get("hub.mode") != "subscribe" or not token_ok:
        log.warning("webhook verification refused")
        return jsonify(error="verification refused"), 403
    challenge = request.args.get("hub.challenge")
    if challenge is None:
        return jsonify(error="hub.challenge missing"), 400
    log.info("webhook verification accepted")
    response = Response(challenge, status=200, mimetype="text/plain")
    # The challenge is attacker-chosen text echoed back; never let a browser sniff it as HTML.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _read_body(limit: int) -> bytes | None:
    """The raw body, or None when it exceeds ``limit``. Reads at most ``limit + 1`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    # Werkzeug caps a chunked (length-less) stream at this value; one byte more than the
    # limit lets a body of exactly ``limit`` bytes end cleanly instead of tripping it.
    request.max_content_length = limit + 1
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = request.stream.read(min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except RequestEntityTooLarge:
        return None
    return None if size > limit else b"".join(chunks)


@bp.post("/webhook")
def receive() -> tuple[Response, int]:
    settings = current_app.config["PARLEY_SETTINGS"]
    metrics.received()
    body = _read_body(settings.max_body_bytes)
    if body is None:
        metrics.rejected("too_large")
        log.warning("webhook refused: body over %d bytes", settings.max_body_bytes)
        return jsonify(error="payload too large"), 413
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        metrics.rejected("missing_signature")
        log.warning("webhook refused: no %s header (%d bytes)", SIGNATURE_HEADER, len(body))
        return jsonify(error=f"missing {SIGNATURE_HEADER}"), 401
    if not verify(body, signature, settings.app_secret):
        metrics.rejected("bad_signature")
        log.warning("webhook refused: bad signature (%d bytes)", len(body))
        return jsonify(error="bad signature"), 403
    try:
        text = body.decode("utf-8")
        document = json.loads(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        metrics.rejected("not_json")
        log.warning("webhook refused: signed body is not UTF-8 JSON (%d bytes)", len(body))
        return jsonify(error="body is not UTF-8 JSON"), 400
    bind(wamid=webhook_correlation_id(document))  # cleared in _forget_correlation
    if not isinstance(document, dict) or document.get("object") != WABA_OBJECT:
        # Acknowledge what is not for us, or Meta retries it for a week.
        metrics.rejected("ignored_object")
        log.info("webhook ignored: object is not %s", WABA_OBJECT)
        return jsonify(status="ignored"), 200
    try:
        current_app.config["ENQUEUE"](text)
    except Exception as exc:  # QueueUnavailable or any broker error: never 200 unqueued
        # The class name only: broker error texts can carry host names or URLs.
        metrics.rejected("queue_unavailable")
        log.error("webhook not queued, answering 503: %s", exc.__class__.__name__)
        return jsonify(error="queue unavailable, retry later"), 503
    metrics.queued()
    log.info("webhook queued (%d bytes)", len(body))
    return jsonify(status="queued"), 200


@bp.teardown_request
def _forget_correlation(_exc: BaseException | None = None) -> None:
    # Worker threads serve request after request: one webhook's id must not tag the next.
    clear_context()
