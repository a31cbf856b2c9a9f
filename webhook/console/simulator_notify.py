"""The simulator's side of notifications: send one to the customer it chats as, show
and their 24-hour window and opt-out.

Routes of the simulator's blueprint (its token rule). A notification goes the real way:
committed as an outbox row by ``worker.notify.submit``, then handed to a sender, so it
reaches the sandbox (or Meta) like any other.
"""

from __future__ import annotations

import uuid

from flask import Response, current_app, jsonify, request

from conversation import consent, history, window
from conversation.db import session_scope
from conversation.models import utcnow
from conversation.notifications import NotificationRefused, NotificationRequest, TemplateRequest
from settings import Settings
from templates.message_templates import load_catalogue
from webhook.console.simulator import bp, business_number
from webhook.console.webhooks import BadInput, normalize_user
from worker.notify import submit


def _settings() -> Settings:
    return current_app.config["PARLEY_SETTINGS"]


@bp.get("/api/notifications")
def customer() -> Response:
    """What the simulator shows of the customer for notifications, and the templates it may send."""
    user = normalize_user(request.args.get("user"))
    now = utcnow()
    with session_scope() as session:
        key = history.user_key(session, user)
        since = consent.opted_out_since(session, key)
        windows = [w.as_dict(now) for w in window.windows(session, key)]
    catalogue = load_catalogue(_settings().templates_dir).catalogue
    templates = [
        {"name": name, "language": language, "parameters": catalogue.get(name, language).parameter_count}  # type: ignore[union-attr]
        for name in sorted(catalogue.names())
        for language in catalogue.languages(name)
    ]
    opted_out_at = since.isoformat() if since is not None else None
    return jsonify(user=user, opted_out_at=opted_out_at, windows=windows, templates=templates)


@bp.post("/api/notify")
def notify() -> tuple[Response, int]:
    """``{user, template: {name, language, parameters}}`` or ``{user, text}``: as the admin API's
    POST /notifications, with a fresh idempotency key each time."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("send a JSON object: {user, template: {name, language, parameters}} or {user, text}")
    user = normalize_user(data.get("user"))
    spec, text = data.get("template"), data.get("text")
    call = None
    if isinstance(spec, dict):
        parameters = spec.get("parameters") or []
        call = TemplateRequest(spec.get("name"), spec.get("language") or "en_US", [str(p) for p in parameters])  # type: ignore[arg-type]
    elif not isinstance(text, str):
        raise BadInput("give a template {name, language, parameters} or a text")
    settings = _settings()
    with session_scope() as session:
        number = business_number(session, settings)
    key = f"simulator:{uuid.uuid4()}"
    request_ = NotificationRequest(user, key, template=call, text=None if call else text, phone_number_id=number)
    try:
        created = submit(request_, current_app.config.get("HAND_OFF"), settings)
    except NotificationRefused as exc:
        return jsonify(error=exc.message, field=exc.field, status=exc.status), exc.status
    return jsonify(id=created.id, status=created.status), 202
