"""The admin API's blueprint and what every route shares: bearer auth, JSON errors,
query parameters. The routes live beside it (templates.py, conversations.py, submissions.py)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, HTTPException

from conversation import stats
from conversation.db import session_scope
from templates.lint import LintError

bp = Blueprint("admin", __name__, url_prefix="/admin/api")
PREFIX = "/admin/api"


class Unprocessable(HTTPException):
    """422 carrying located template errors."""

    code = 422
    description = "the template is invalid"

    def __init__(self, errors: list[LintError], status: int = 422) -> None:
        super().__init__()
        self.code = status
        self.errors = errors


def scope() -> AbstractContextManager[Session]:
    """One session for the request: ``app.config["SESSION_SCOPE"]`` when a test set it."""
    factory: Callable[[], AbstractContextManager[Session]] = current_app.config.get("SESSION_SCOPE", session_scope)
    return factory()


@bp.before_request
def _authenticate() -> Response | None:
    if request.endpoint == "admin.openapi":
        return None
    return bearer_refusal()


def bearer_refusal() -> Response | None:
    """401 or 403 unless the request carries the admin token; None when it does. Every
    blueprint behind the admin token (this API, the handoffs and the inbox) checks with it."""
    token: str = current_app.config["PARLEY_SETTINGS"].admin_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        response = error_response(401, "send Authorization: Bearer <PARLEY_ADMIN_TOKEN>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="parley-admin"'
        return response
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return error_response(403, "wrong admin token")
    return None


def has_nul(node: Any) -> bool:
    """Whether a JSON value holds a NUL character anywhere: Postgres JSONB cannot store one,
    so a request carrying it gets a 400 that says so instead of a 500."""
    if isinstance(node, str):
        return "\x00" in node
    if isinstance(node, dict):
        return any(has_nul(k) or has_nul(v) for k, v in node.items())
    if isinstance(node, list):
        return any(has_nul(v) for v in node)
    return False


def error_response(status: int, message: str, errors: list[LintError] | None = None) -> Response:
    body: dict[str, Any] = {"error": {"status": status, "message": message}}
    if errors is not None:
        body["error"]["errors"] = [lint_json(e) for e in errors]
    response = jsonify(body)
    response.status_code = status
    return response


def lint_json(error: LintError) -> dict[str, Any]:
    return {
        "file": error.file,
        "template": error.template,
        "step": error.step,
        "field": error.field,
        "message": error.message,
        "line": str(error),
    }


@bp.errorhandler(HTTPException)  # the views' own errors, whatever other parts register app-wide
def json_errors(exc: HTTPException) -> Response | HTTPException:
    if not request.path.startswith(PREFIX + "/") and request.path != PREFIX:
        return exc  # someone else's route: Flask's own error page
    if isinstance(exc, Unprocessable):
        return error_response(exc.code or 422, "the template is invalid", exc.errors)
    response = error_response(exc.code or 500, exc.description or exc.name)
    for name, value in exc.get_headers():  # e.g. a 405's Allow, which RFC 9110 requires
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


# --- query parameters -----------------------------------------------------------------


def int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def date_arg(name: str, end: bool = False) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return stats.parse_bound(raw, end=end)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO date (2026-11-30) or datetime") from None


def bool_arg(name: str) -> bool:
    raw = request.args.get(name, "false").lower()
    if raw not in {"true", "false"}:
        raise BadRequest(f"{name} must be true or false")
    return raw == "true"


def text_arg(name: str) -> str | None:
    """A text filter; NUL (which Postgres text cannot hold) becomes U+FFFD and so matches nothing."""
    value = request.args.get(name)
    return value.replace("\x00", "\ufffd") if value else None


@bp.url_value_preprocessor
def _clean_path(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Path parameters as ``text_arg``: a NUL in a name names nothing."""
    if values:
        for key, value in values.items():
            values[key] = value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
