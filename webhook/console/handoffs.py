"""The agents' API under ``/admin/api/handoffs`` and their inbox page at ``/console/inbox``.

Customers waiting for a person (oldest first), a customer's transcript, a person's reply
(202: in the outbox, handed to a sender after commit; 409 when the customer is not handed
off or their 24-hour window is closed) and release. Every API route needs
``Authorization: Bearer <PARLEY_ADMIN_TOKEN>``; without an admin token (production without
PARLEY_ADMIN_TOKEN) neither the API nor the page is registered. The page is static: it
asks the agent for the token and calls the API with it.

Tests may set ``app.config["SESSION_SCOPE"]`` (a context-manager factory yielding their
session) and ``app.config["HAND_OFF"]`` (called with the customer after a reply commits).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_from_directory
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from conversation import handoff
from conversation.db import session_scope
from conversation.models import Contact, utcnow
from conversation.transcript import transcript
from settings import Settings
from webhook.console.admin.base import bearer_refusal, error_response

log = logging.getLogger(__name__)
PREFIX = "/admin/api/handoffs"
STATIC = Path(__file__).resolve().parent / "static" / "inbox"
bp = Blueprint("handoffs", __name__, url_prefix=PREFIX)
inbox = Blueprint("inbox", __name__, url_prefix="/console/inbox", static_folder=STATIC, static_url_path="/static")


def _scope() -> AbstractContextManager[Session]:
    factory: Callable[[], AbstractContextManager[Session]] = current_app.config.get("SESSION_SCOPE", session_scope)
    return factory()


def _hand_off(user_key: str) -> None:
    hand_off: Callable[[str], None] | None = current_app.config.get("HAND_OFF")
    if hand_off is None:
        # Imported here: importing the worker builds the Celery app, which the page never needs.
        from worker.tasks import hand_off
    hand_off(user_key)


@bp.before_request
def _authenticate() -> Response | None:
    return bearer_refusal()


@bp.errorhandler(HTTPException)
def _json_errors(exc: HTTPException) -> Response:
    return error_response(exc.code or 500, exc.description or exc.name)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@bp.get("")
def waiting() -> Response:
    """Customers handed to a person and not released, oldest first."""
    with _scope() as session:
        rows = handoff.waiting_list(session)
    return jsonify([{"user": w.user, "since": _iso(w.since), "last_message": w.last_message, "waiting": w.waiting}
                    for w in rows])  # fmt: skip


@bp.get("/<user>/messages")
def messages(user: str) -> Response:
    """The customer's transcript, both ways, in order; 404 for someone who never wrote."""
    with _scope() as session:
        if session.scalar(select(Contact.user_key).where(Contact.user_key == user)) is None:
            return error_response(404, "no such customer")
        lines = transcript(session, user)
    return jsonify([{"direction": line.direction, "text": line.text, "at": _iso(line.at)} for line in lines])


@bp.post("/<user>/messages")
def reply(user: str) -> tuple[Response, int] | Response:
    """A person's message to the customer, through the outbox like every reply."""
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error_response(400, 'send a JSON object: {"text": ...}')
    text = body.get("text")
    if not isinstance(text, str) or not handoff.valid_reply(text.strip()):
        return error_response(422, f"text: a string of 1 to {handoff.MAX_REPLY} characters is required")
    try:
        with _scope() as session:
            row_id = handoff.reply(session, user, text, utcnow())
    except handoff.NotHandedOff:
        return error_response(409, "the customer is not handed off to a person")
    except handoff.WindowClosed:
        return error_response(409, "the 24-hour window is closed: the customer has not written in the last 24 hours")
    _hand_off(user)  # committed above: a sender may take it now (Beat's sweep if the broker is away)
    return jsonify({"id": row_id, "status": "pending"}), 202


@bp.post("/<user>/release")
def release(user: str) -> Response:
    """The bot resumes: the customer's next message is handled as if no conversation were live."""
    with _scope() as session:
        released = handoff.release(session, user, utcnow())
    if not released:
        return error_response(404, "the customer is not handed off")
    return jsonify({"user": user, "released": True})


@inbox.get("")
def page() -> Response:
    response = send_from_directory(STATIC, "index.html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def init_app(app: Flask) -> None:
    settings: Settings = app.config["PARLEY_SETTINGS"]
    if not settings.admin_token:
        log.warning("agent inbox disabled: PARLEY_ADMIN_TOKEN is not set")
        return
    app.register_blueprint(bp)
    app.register_blueprint(inbox)
