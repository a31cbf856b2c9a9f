"""Admin JSON API under ``/admin/api``: templates, conversations, submissions, outbound, stats.

Every route but ``/admin/api/openapi.json`` needs ``Authorization: Bearer <token>``
(settings.admin_token): 401 without it, 403 with a wrong one. In production without
PARLEY_ADMIN_TOKEN the blueprint is not registered at all. Views are thin: one session
per request, the domain does the work. Tests may set ``app.config["SESSION_SCOPE"]`` to a
context-manager factory yielding their own session.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

from conversation import stats
from conversation.db import session_scope
from conversation.models import ConversationState, OutboundMessage, Submission, utcnow
from conversation.service import ConversationService, TemplateInvalid, to_definition
from settings import Settings
from templates.lint import LintError
from templates.loader import _raw_target_errors, parse_definition
from templates.schema import TemplateDef
from webhook.openapi import MAX_LIMIT, MAX_OFFSET, SPEC

log = logging.getLogger(__name__)
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


def _scope() -> AbstractContextManager[Session]:
    factory: Callable[[], AbstractContextManager[Session]] = current_app.config.get("SESSION_SCOPE", session_scope)
    return factory()


@bp.before_request
def _authenticate() -> Response | None:
    if request.endpoint == "admin.openapi":
        return None
    token: str = current_app.config["PARLEY_SETTINGS"].admin_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        response = _error(401, "send Authorization: Bearer <PARLEY_ADMIN_TOKEN>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="parley-admin"'
        return response
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return _error(403, "wrong admin token")
    return None


def _error(status: int, message: str, errors: list[LintError] | None = None) -> Response:
    body: dict[str, Any] = {"error": {"status": status, "message": message}}
    if errors is not None:
        body["error"]["errors"] = [_lint(e) for e in errors]
    response = jsonify(body)
    response.status_code = status
    return response


def _lint(error: LintError) -> dict[str, Any]:
    return {
        "file": error.file,
        "template": error.template,
        "step": error.step,
        "field": error.field,
        "message": error.message,
        "line": str(error),
    }


@bp.errorhandler(HTTPException)  # the views' own errors, whatever other parts register app-wide
def _json_errors(exc: HTTPException) -> Response | HTTPException:
    if not request.path.startswith(PREFIX + "/") and request.path != PREFIX:
        return exc  # someone else's route: Flask's own error page
    if isinstance(exc, Unprocessable):
        return _error(exc.code or 422, "the template is invalid", exc.errors)
    response = _error(exc.code or 500, exc.description or exc.name)
    for name, value in exc.get_headers():  # e.g. a 405's Allow, which RFC 9110 requires
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


# --- query parameters -----------------------------------------------------------------


def _int_arg(name: str, default: int, low: int, high: int) -> int:
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


def _date_arg(name: str, end: bool = False) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return stats.parse_bound(raw, end=end)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO date (2026-11-30) or datetime") from None


def _bool_arg(name: str) -> bool:
    raw = request.args.get(name, "false").lower()
    if raw not in {"true", "false"}:
        raise BadRequest(f"{name} must be true or false")
    return raw == "true"


def _arg(name: str) -> str | None:
    """A text filter; NUL (which Postgres text cannot hold) becomes U+FFFD and so matches nothing."""
    value = request.args.get(name)
    return value.replace("\x00", "\ufffd") if value else None


@bp.url_value_preprocessor
def _clean_path(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Path parameters as ``_arg``: a NUL in a name names nothing."""
    if values:
        for key, value in values.items():
            values[key] = value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- templates -------------------------------------------------------------------------


def _body() -> Any:
    try:
        data = json.loads(request.get_data(cache=True))
    except ValueError:
        raise BadRequest("the body must be JSON: the flow, in the shape of its YAML file") from None
    if _has_nul(data):  # Postgres JSONB cannot store it; say so instead of failing with a 500
        raise BadRequest("the body must not contain NUL characters (\\u0000)")
    return data


def _has_nul(node: Any) -> bool:
    if isinstance(node, str):
        return "\x00" in node
    if isinstance(node, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_has_nul(v) for v in node)
    return False


def _definition(data: Any) -> tuple[TemplateDef | None, list[LintError]]:
    """The loader's schema check; errors are located in "template NAME" (the API's file).

    Like the loader, a flow that fails the schema also gets its bad targets reported, so
    one answer lists every error.
    """
    name = data.get("template_name") if isinstance(data, dict) else None
    file = f"template {name}" if isinstance(name, str) else "request body"
    definition, errors = parse_definition(data, file)
    if definition is None:
        with _scope() as session:
            names = {row.template_name for row in ConversationService(session).list_templates()}
        errors += _raw_target_errors(data, file, names | ({name} if isinstance(name, str) else set()))
    return definition, sorted(set(errors), key=LintError.sort_key)


def _parse(data: Any) -> TemplateDef:
    definition, errors = _definition(data)
    if errors or definition is None:
        raise Unprocessable(errors)
    return definition


@bp.get("/templates")
def list_templates() -> Response:
    with _scope() as session:
        rows = ConversationService(session).list_templates()
        items = [
            {
                "template_name": r.template_name,
                "template_type": r.template_type,
                "trigger_keywords": list(r.trigger_keywords or []),
                "is_active": r.is_active,
                "description": (r.options or {}).get("description"),
                "steps": sorted((r.menu_structure or {}).get("steps", {})),
                "updated_at": _iso(r.updated_at),
            }
            for r in rows
        ]
    return jsonify({"templates": items})


@bp.get("/templates/<name>")
def get_template(name: str) -> Response:
    with _scope() as session:
        row = ConversationService(session).get_template(name)
        if row is None:
            raise NotFound(f"no template named {name}")
        return jsonify(to_definition(row).model_dump(mode="json", exclude_none=True))


@bp.post("/templates")
def create_template() -> tuple[Response, int]:
    definition = _parse(_body())
    with _scope() as session:
        service = ConversationService(session)
        if service.get_template(definition.template_name) is not None:
            return _error(409, f"template {definition.template_name} already exists; PUT to update it"), 409
        try:
            service.upsert_template(definition)
        except TemplateInvalid as exc:
            raise Unprocessable(exc.errors) from None
    return jsonify(definition.model_dump(mode="json", exclude_none=True)), 201


@bp.put("/templates/<name>")
def update_template(name: str) -> Response:
    definition = _parse(_body())
    if definition.template_name != name:
        message = f"template_name: '{definition.template_name}' does not match the URL's '{name}'"
        raise Unprocessable([LintError(f"template {name}", name, None, "template_name", message)])
    with _scope() as session:
        service = ConversationService(session)
        if service.get_template(name) is None:
            raise NotFound(f"no template named {name}; POST /admin/api/templates creates it")
        try:
            service.upsert_template(definition)
        except TemplateInvalid as exc:
            raise Unprocessable(exc.errors) from None
    return jsonify(definition.model_dump(mode="json", exclude_none=True))


@bp.delete("/templates/<name>")
def delete_template(name: str) -> Response:
    with _scope() as session:
        try:
            deleted = ConversationService(session).delete_template(name)
        except TemplateInvalid as exc:  # another template still switches to it
            raise Unprocessable(exc.errors, status=409) from None
    if not deleted:
        raise NotFound(f"no template named {name}")
    return Response(status=204)


@bp.post("/templates/validate")
def validate_template() -> Response:
    """Schema and graph rules against the stored templates; nothing is saved."""
    definition, errors = _definition(_body())
    if definition is not None:
        with _scope() as session:
            errors = ConversationService(session).validate_templates({definition.template_name: definition})
    return jsonify({"valid": not errors, "errors": [_lint(e) for e in errors]})


# --- conversations ---------------------------------------------------------------------


def _conversation(row: ConversationState, now: datetime) -> dict[str, Any]:
    return {
        "user_key": row.user_key,
        "phone_number": row.phone_number,
        "user_id": row.user_id,
        "template": row.conversation_flow,
        "step": row.current_step,
        "context": row.context or {},
        "live": row.expires_at > now,
        "last_interaction": _iso(row.last_interaction),
        "expires_at": _iso(row.expires_at),
        "created_at": _iso(row.created_at),
    }


@bp.get("/conversations")
def list_conversations() -> Response:
    stmt = select(ConversationState).order_by(ConversationState.last_interaction.desc(), ConversationState.id)
    if template := _arg("template"):
        stmt = stmt.where(ConversationState.conversation_flow == template)
    if step := _arg("step"):
        stmt = stmt.where(ConversationState.current_step == step)
    if user := _arg("user"):
        c = ConversationState
        stmt = stmt.where(or_(c.user_key == user, c.phone_number == user, c.user_id == user))
    stmt = stmt.limit(_int_arg("limit", 100, 1, MAX_LIMIT)).offset(_int_arg("offset", 0, 0, MAX_OFFSET))
    now = utcnow()
    with _scope() as session:
        items = [_conversation(row, now) for row in session.scalars(stmt)]
    return jsonify({"conversations": items})


@bp.get("/conversations/<user>")
def get_conversation(user: str) -> Response:
    now = utcnow()
    with _scope() as session:
        row = session.scalar(select(ConversationState).where(ConversationState.user_key == user))
        if row is None:
            raise NotFound(f"no conversation for {user}")
        body = _conversation(row, now)
        body["menu"] = ConversationService(session).get_current_menu(user) if body["live"] else []
    return jsonify(body)


@bp.post("/conversations/<user>/end")
def end_conversation(user: str) -> Response:
    with _scope() as session:
        ended = ConversationService(session).end_conversation(user)
    if not ended:
        raise NotFound(f"no conversation for {user}")
    return jsonify({"user_key": user, "ended": True})


# --- submissions, stats, outbound --------------------------------------------------------


def _submission_rows(session: Session, limit: int | None, offset: int) -> list[Submission]:
    since, until = _date_arg("since"), _date_arg("until", end=True)
    return stats.submissions(session, _arg("template"), since, until, limit, offset)


@bp.get("/submissions")
def list_submissions() -> Response:
    reveal = _bool_arg("reveal_users")
    limit, offset = _int_arg("limit", 100, 1, MAX_LIMIT), _int_arg("offset", 0, 0, MAX_OFFSET)
    with _scope() as session:
        items = [
            {
                "id": str(row.id),
                "template": row.template_name,
                "user": row.user_key if reveal else stats.mask_user(row.user_key),
                "submitted_at": _iso(row.created_at),
                "answers": row.answers or {},
            }
            for row in _submission_rows(session, limit, offset)
        ]
    return jsonify({"submissions": items})


@bp.get("/submissions.csv")
def export_submissions() -> Response:
    with _scope() as session:
        rows = _submission_rows(session, None, 0)
    out = io.StringIO()
    stats.write_csv(rows, out, _bool_arg("reveal_users"))
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="submissions.csv"'
    return response


@bp.get("/stats/<template>")
def template_stats(template: str) -> Response:
    since, until = _date_arg("since"), _date_arg("until", end=True)
    with _scope() as session:
        funnel = stats.dropoff(session, template, since, until)
    if not funnel.steps:
        raise NotFound(f"no template and no recorded conversations named {template}")
    return jsonify(funnel.as_dict())


def _outbound(row: OutboundMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_key": row.user_key,
        "kind": row.kind,
        "status": row.status,
        "attempts": row.attempts,
        "wamid": row.wamid,
        "inbound_wamid": row.inbound_wamid,
        "last_error_code": row.last_error_code,
        "last_error": row.last_error,
        "content": row.content,
        "status_at": _iso(row.status_at),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


@bp.get("/outbound")
def outbound_status() -> Response:
    """By ``wamid`` (one message), by ``user`` (their latest), or the latest of all."""
    wamid, user = _arg("wamid"), _arg("user")
    stmt = select(OutboundMessage).order_by(OutboundMessage.id.desc())
    if wamid:
        stmt = stmt.where(OutboundMessage.wamid == wamid)
    if user:
        stmt = stmt.where(OutboundMessage.user_key == user)
    stmt = stmt.limit(_int_arg("limit", 50, 1, MAX_LIMIT))
    with _scope() as session:
        items = [_outbound(row) for row in session.scalars(stmt)]
    return jsonify({"messages": items})


@bp.get("/openapi.json")
def openapi() -> Response:
    """The API's description; public, like any API's documentation."""
    return jsonify(SPEC)


def init_app(app: Flask) -> None:
    settings: Settings = app.config["PARLEY_SETTINGS"]
    if not settings.admin_token:  # production without PARLEY_ADMIN_TOKEN
        log.warning("admin API disabled: PARLEY_ADMIN_TOKEN is not set")
        return
    app.register_blueprint(bp)
    # Routing errors (unknown URL, wrong method) happen outside the blueprint: JSON for ours too.
    app.register_error_handler(HTTPException, _json_errors)
