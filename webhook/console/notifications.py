"""Admin API of business-initiated messages, under ``/admin/api`` with the admin bearer token.

- ``POST /notifications``: queue a template, or a text inside the 24-hour window (README, "Notifications");
- ``GET /notifications/ID``: its delivery status;
- ``POST /orders/ORDER_ID/ready``: the café's ``order_ready`` notice to whoever ordered;
- ``GET /contacts/USER``: the customer's windows per business number and opt-out.

Routes of the admin blueprint (its bearer check and JSON errors). Views are thin: one
session per request, the domain (``conversation/notifications.py``) decides; the customer
is handed to a sender only after the commit. Tests may set ``app.config["SESSION_SCOPE"]``
(as for the admin API) and ``app.config["HAND_OFF"]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flask import Response, current_app, jsonify, request
from sqlalchemy.orm import Session

from conversation import window
from conversation.models import Contact, utcnow
from conversation.notification_requests import parse_request
from conversation.notifications import (
    Created,
    NotificationRefused,
    NotificationRequest,
    create_notification,
    get_notification,
    resolve,
)
from conversation.order_notices import OrderNotFound, order_ready
from settings import Settings
from templates.message_templates import Catalogue, load_catalogue
from webhook.console.admin.base import bp, error_response, has_nul, scope

log = logging.getLogger(__name__)


def _hand_off(user_key: str) -> None:
    hand_off: Callable[[str], None] = current_app.config.get("HAND_OFF") or _celery_hand_off
    hand_off(user_key)


def _celery_hand_off(user_key: str) -> None:
    from worker.tasks import hand_off  # the Celery app, built only by a request that sends

    hand_off(user_key)


def _error(status: int, message: str, field: str | None = None) -> Response:
    """The admin API's error body, naming the request field at fault when there is one."""
    response = error_response(status, message)
    if field is not None:
        response.set_data(json.dumps({"error": {"status": status, "message": message, "field": field}}))
    return response


def _submit(build: Callable[[Session, Catalogue], NotificationRequest]) -> Response:
    """Queue what ``build`` asks for in one transaction; hand off after the commit."""
    settings: Settings = current_app.config["PARLEY_SETTINGS"]
    catalogue = load_catalogue(settings.templates_dir).catalogue
    try:
        with scope() as session:
            created: Created = create_notification(
                session, build(session, catalogue), catalogue, settings.phone_number_id, utcnow()
            )
    except NotificationRefused as exc:
        return _error(exc.status, exc.message, exc.field)
    except OrderNotFound as exc:
        return _error(404, str(exc))
    if created.created:
        try:
            _hand_off(created.user_key)
        except Exception as exc:  # committed: Beat's outbox sweep sends it
            log.warning("hand-off deferred to the outbox sweep: %s", exc.__class__.__name__)
        log.info("notification queued", extra={"outbox_id": created.id})
    response = jsonify({"id": created.id, "status": created.status})
    response.status_code = 202 if created.created else 200
    return response


@bp.post("/notifications")
def create() -> Response:
    try:
        data = json.loads(request.get_data(cache=True))
    except ValueError:
        return _error(400, "the body must be JSON")
    if has_nul(data):  # Postgres cannot store it
        return _error(400, "the body must not contain NUL characters (\\u0000)")
    try:
        parsed = parse_request(data)
    except NotificationRefused as exc:
        return _error(exc.status, exc.message, exc.field)
    return _submit(lambda _session, _catalogue: parsed)


@bp.get("/notifications/<id>")
def show(id: str) -> Response:
    found = None
    if id.isdigit() and len(id) <= 18:
        with scope() as session:
            found = get_notification(session, int(id))
    if found is None:
        return _error(404, f"no notification {id}")
    return jsonify(found)


@bp.post("/orders/<order>/ready")
def order_is_ready(order: str) -> Response:
    """Notify the customer who placed ``order`` (``ORD-000002``) that it is ready."""
    return _submit(lambda session, catalogue: order_ready(session, order, catalogue))


@bp.get("/contacts/<user>")
def contact(user: str) -> Response:
    """What notifications need to know of a customer: opt-out and each number's window."""
    now = utcnow()
    with scope() as session:
        try:
            row = session.get(Contact, resolve(session, user).user_key)
        except NotificationRefused:
            row = None
        if row is None:
            return _error(404, "no such customer (BSUID or phone digits, as in their conversations)")
        windows = [w.as_dict(now) for w in window.windows(session, row.user_key)]
        body = {
            "user_key": row.user_key,
            "phone_number": row.phone_number,
            "user_id": row.user_id,
            "opted_out": row.opted_out_at is not None,
            "opted_out_at": row.opted_out_at.isoformat() if row.opted_out_at is not None else None,
            "marketing_stopped_at": stopped.isoformat() if (stopped := row.marketing_opted_out_at) else None,
            "windows": windows,
        }
    return jsonify(body)
