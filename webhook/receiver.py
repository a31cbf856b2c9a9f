"""``/webhook``: Meta's verification handshake and event notifications.

The POST path only verifies and queues: no database, no HTTP calls. It answers 200
only once the payload is in the broker; 503 otherwise, so Meta retries.
"""

from __future__ import annotations

import hmac
import json
import logging

from flask import Blueprint, Response, current_app, jsonify, request

from webhook.signature import verify

log = logging.getLogger(__name__)
bp = Blueprint("receiver", __name__)


@bp.get("/webhook")
def handshake() -> Response | tuple[str, int]:
    settings = current_app.config["PARLEY_SETTINGS"]
    challenge = request.args.get("hub.challenge")
    token = request.args.get("hub.verify_token", "")
    if request.args.get("hub.mode") != "subscribe" or not hmac.compare_digest(
        token.encode(), settings.verify_token.encode()
    ):
        log.warning("webhook verification refused")
        return "forbidden", 403
    if challenge is None:
        return "missing hub.challenge", 400
    return Response(challenge, status=200, mimetype="text/plain")


def _read_body(limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit`` (never buffers more)."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    body = request.stream.read(limit + 1)
    return None if len(body) > limit else body


@bp.post("/webhook")
def receive() -> tuple[Response, int]:
    settings = current_app.config["PARLEY_SETTINGS"]
    body = _read_body(settings.max_body_bytes)
    if body is None:
        return jsonify(error="payload too large"), 413
    signature = request.headers.get("X-Hub-Signature-256")
    if not signature:
        log.warning("webhook without signature refused")
        return jsonify(error="missing X-Hub-Signature-256"), 401
    if not verify(body, signature, settings.app_secret):
        log.warning("webhook with a bad signature refused", extra={"bytes": len(body)})
        return jsonify(error="bad signature"), 403
    try:
        text = body.decode("utf-8")
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return jsonify(error="body is not JSON"), 400
    if not isinstance(document, dict) or document.get("object") != "whatsapp_business_account":
        # Acknowledge what is not for us, or Meta retries it for a week.
        return jsonify(status="ignored"), 200
    try:
        current_app.config["ENQUEUE"](text)
    except Exception as exc:  # any broker failure: Meta must retry, so never 200
        log.error("could not queue webhook: %s", exc.__class__.__name__)
        return jsonify(error="queue unavailable, retry later"), 503
    return jsonify(status="queued"), 200
