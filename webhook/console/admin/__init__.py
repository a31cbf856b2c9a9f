"""Admin JSON API under ``/admin/api``: templates, conversations, submissions, outbound, stats,
notifications.

Every route but ``/admin/api/openapi.json`` needs ``Authorization: Bearer <token>``
(settings.admin_token): 401 without it, 403 with a wrong one. In production without
PARLEY_ADMIN_TOKEN the blueprint is not registered at all. Views are thin: one session
per request, the domain does the work. Tests may set ``app.config["SESSION_SCOPE"]`` to a
context-manager factory yielding their own session.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from webhook import admin_enabled
from webhook.console import notifications
from webhook.console.admin import conversations, message_templates, submissions, templates
from webhook.console.admin.base import bp, json_errors
from webhook.console.openapi import SPEC

# Imported for their routes, which they add to ``bp``.
ROUTES = (templates, conversations, submissions, notifications, message_templates)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The API's description; public, like any API's documentation."""
    return jsonify(SPEC)


def init_app(app: Flask) -> None:
    """Register the API when ``webhook.admin_enabled`` says so (a token is configured)."""
    if not admin_enabled(app.config["PARLEY_SETTINGS"]):
        return
    app.register_blueprint(bp)
    # Routing errors (unknown URL, wrong method) happen outside the blueprint: JSON for ours too.
    app.register_error_handler(HTTPException, json_errors)
