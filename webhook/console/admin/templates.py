"""``/admin/api/templates``: list, read, create, update, delete and validate flows.

A body is the flow in the shape of its YAML file, checked by the loader's schema and
graph rules against the stored templates; errors are located in "template NAME".
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import BadRequest, NotFound

from conversation.service import ConversationService, TemplateInvalid, to_definition
from templates.lint import LintError
from templates.loader import parse_definition, raw_target_errors
from templates.schema import TemplateDef
from webhook.console.admin.base import Unprocessable, bp, error_response, has_nul, iso, lint_json, scope


def _body() -> Any:
    try:
        data = json.loads(request.get_data(cache=True))
    except ValueError:
        raise BadRequest("the body must be JSON: the flow, in the shape of its YAML file") from None
    if has_nul(data):  # Postgres JSONB cannot store it; say so instead of failing with a 500
        raise BadRequest("the body must not contain NUL characters (\\u0000)")
    return data


def _definition(data: Any) -> tuple[TemplateDef | None, list[LintError]]:
    """The loader's schema check; errors are located in "template NAME" (the API's file).

    Like the loader, a flow that fails the schema also gets its bad targets reported, so
    one answer lists every error.
    """
    name = data.get("template_name") if isinstance(data, dict) else None
    file = f"template {name}" if isinstance(name, str) else "request body"
    definition, errors = parse_definition(data, file)
    if definition is None:
        with scope() as session:
            names = {row.template_name for row in ConversationService(session).list_templates()}
        errors += raw_target_errors(data, file, names | ({name} if isinstance(name, str) else set()))
    return definition, sorted(set(errors), key=LintError.sort_key)


def _parse(data: Any) -> TemplateDef:
    definition, errors = _definition(data)
    if errors or definition is None:
        raise Unprocessable(errors)
    return definition


@bp.get("/templates")
def list_templates() -> Response:
    with scope() as session:
        rows = ConversationService(session).list_templates()
        items = [
            {
                "template_name": r.template_name,
                "template_type": r.template_type,
                "trigger_keywords": list(r.trigger_keywords or []),
                "is_active": r.is_active,
                "description": (r.options or {}).get("description"),
                "steps": sorted((r.menu_structure or {}).get("steps", {})),
                "updated_at": iso(r.updated_at),
            }
            for r in rows
        ]
    return jsonify({"templates": items})


@bp.get("/templates/<name>")
def get_template(name: str) -> Response:
    with scope() as session:
        row = ConversationService(session).get_template(name)
        if row is None:
            raise NotFound(f"no template named {name}")
        return jsonify(to_definition(row).model_dump(mode="json", exclude_none=True))


@bp.post("/templates")
def create_template() -> tuple[Response, int]:
    definition = _parse(_body())
    with scope() as session:
        service = ConversationService(session)
        if service.get_template(definition.template_name) is not None:
            return error_response(409, f"template {definition.template_name} already exists; PUT to update it"), 409
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
    with scope() as session:
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
    with scope() as session:
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
        with scope() as session:
            errors = ConversationService(session).validate_templates({definition.template_name: definition})
    return jsonify({"valid": not errors, "errors": [lint_json(e) for e in errors]})
