"""OpenAPI 3.1 description of ``/admin/api`` (served at ``/admin/api/openapi.json``).

The flow's schema comes from the pydantic model the loader validates with, so the
description cannot drift from what the API accepts; tests/webhook/console/test_openapi.py checks
that every admin route is described and that real answers match their schemas.
"""

from __future__ import annotations

from typing import Any

from conversation.state import EndReason
from templates.schema import TemplateDef
from webhook.console import handoffs_openapi, notifications_openapi

REF = "#/components/schemas/{model}"
MAX_LIMIT, MAX_OFFSET = 1000, 10**9


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


STR = {"type": "string"}
INT = {"type": "integer"}
TIME = {"type": "string", "format": "date-time"}
_count = {"type": "integer", "minimum": 0}
_endings = {reason: _count for reason in EndReason}

_flow = TemplateDef.model_json_schema(ref_template=REF)
_flow_defs = _flow.pop("$defs")

SCHEMAS: dict[str, Any] = {
    "TemplateDef": _flow,
    "LintError": _obj(
        ["file", "step", "field", "message", "line"],
        file={"type": "string", "description": "where the template came from, e.g. 'template new_order'"},
        template=_nullable("string"),
        step=_nullable("string"),
        field=_nullable("string", description="dotted path of the field, e.g. menu_structure.steps.quantity"),
        message=STR,
        line={"type": "string", "description": "the error as one line, as the CLI prints it"},
    ),
    "Error": _obj(
        ["error"],
        error=_obj(
            ["status", "message"], status=INT, message=STR, errors={"type": "array", "items": _ref("LintError")}
        ),
    ),
    "TemplateSummary": _obj(
        ["template_name", "template_type", "trigger_keywords", "is_active", "steps", "updated_at"],
        template_name=STR,
        template_type={"enum": ["button", "list", "text"]},
        trigger_keywords={"type": "array", "items": STR},
        is_active={"type": "boolean"},
        description=_nullable("string"),
        steps={"type": "array", "items": STR},
        updated_at=_nullable("string", format="date-time"),
    ),
    "ValidationResult": _obj(
        ["valid", "errors"], valid={"type": "boolean"}, errors={"type": "array", "items": _ref("LintError")}
    ),
    "Conversation": _obj(
        ["user_key", "template", "step", "context", "live", "last_interaction", "expires_at"],
        user_key={"type": "string", "description": "BSUID when known, else the phone number"},
        phone_number=_nullable("string"),
        user_id=_nullable("string"),
        template=STR,
        step=STR,
        context={"type": "object", "description": "answers so far; keys starting with _ are bookkeeping"},
        live={"type": "boolean", "description": "false once expired (cleanup deletes it soon)"},
        last_interaction=TIME,
        expires_at=TIME,
        created_at=_nullable("string", format="date-time"),
    ),
    "Submission": _obj(
        ["id", "template", "user", "submitted_at", "answers"],
        id=STR,
        template=STR,
        user={"type": "string", "description": "masked unless reveal_users=true"},
        submitted_at=TIME,
        answers={"type": "object"},
    ),
    "OutboundMessage": _obj(
        ["id", "user_key", "kind", "status", "attempts", "content", "created_at"],
        id=INT,
        user_key=STR,
        kind={"enum": ["message", "mark_read"]},
        status={"enum": ["pending", "sending", "accepted", "sent", "delivered", "read", "played", "failed"]},
        attempts=INT,
        wamid=_nullable("string"),
        inbound_wamid=_nullable("string"),
        origin=_nullable("string", description="'notification' for one the business sent first; null for a reply"),
        last_error_code=_nullable("integer"),
        last_error=_nullable("string"),
        content={"type": "object", "description": "the WhatsApp message content"},
        status_at=_nullable("string", format="date-time"),
        created_at=TIME,
        updated_at=_nullable("string", format="date-time"),
    ),
    "FunnelStep": _obj(["step", "reached", *EndReason], step=STR, reached=_count, **_endings),
    "Funnel": _obj(
        ["template", "started", *EndReason, "steps"],
        template=STR,
        started={**_count, "description": "runs that reached initial"},
        **_endings,
        steps={"type": "array", "items": _ref("FunnelStep"), "description": "flow order, breadth-first from initial"},
    ),
    "MessageTemplateStatus": _obj(
        ["name", "language", "status", "category", "quality", "sendable", "updated_at"],
        name=STR,
        language=STR,
        template_id=_nullable("string"),
        status={**_nullable("string"), "description": "Meta's review status: APPROVED, PAUSED, DISABLED, ..."},
        reason=_nullable("string"),
        category=_nullable("string"),
        quality=_nullable("string"),
        sendable={"type": "boolean", "description": "false: notifications of it are refused with 409"},
        updated_at=TIME,
    ),
}
if set(SCHEMAS) & set(_flow_defs):  # both live in components/schemas
    raise RuntimeError(f"schema names clash: {set(SCHEMAS) & set(_flow_defs)}")
if set(SCHEMAS) & set(handoffs_openapi.SCHEMAS):
    raise RuntimeError(f"schema names clash: {set(SCHEMAS) & set(handoffs_openapi.SCHEMAS)}")
SCHEMAS.update(handoffs_openapi.SCHEMAS)


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _list(key: str, item: str) -> dict[str, Any]:
    return _json(_obj([key], **{key: {"type": "array", "items": _ref(item)}}))


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema or STR}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STR}


AUTH = {"401": _err("no bearer token"), "403": _err("wrong token")}
BAD = {"400": _err("a bad query parameter")}
NOT_FOUND = {"404": _err("not found")}
INVALID = {"422": _err("invalid flow: every error located (file, step, field)")}
FLOW_BODY = {"required": True, "content": {"application/json": {"schema": _ref("TemplateDef")}}}
_WHEN = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
SINCE = _query("since", "from this date or date-time (UTC if no offset), inclusive", _WHEN)
UNTIL = _query("until", "up to this date (inclusive) or date-time (exclusive)", _WHEN)
LIMIT = _query("limit", "at most this many (default 100)", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})
OFFSET = _query("offset", "skip this many", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET})
REVEAL = _query("reveal_users", "true: full phone numbers/BSUIDs instead of masked ones", {"type": "boolean"})
TEMPLATE = _query("template", "only this template")


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, **AUTH}, **extra}


PATHS: dict[str, Any] = {
    "/admin/api/templates": {
        "get": _op("List templates", {"200": _list("templates", "TemplateSummary")}),
        "post": _op(
            "Create a template (validated like the loader, linted with the stored ones)",
            {"201": _json(_ref("TemplateDef"), "created"), "400": _err("not JSON"), "409": _err("exists"), **INVALID},
            requestBody=FLOW_BODY,
        ),
    },
    "/admin/api/templates/validate": {
        "post": _op(
            "Validate a template without saving it",
            {"200": _json(_ref("ValidationResult")), "400": _err("not JSON")},
            requestBody={
                "required": True,
                "description": "a candidate flow: any JSON; whatever keeps it from being a valid flow is reported",
                "content": {"application/json": {"schema": {}}},
            },
        ),
    },
    "/admin/api/templates/{name}": {
        "parameters": [_path("name")],
        "get": _op("The template, in the shape of its YAML file", {"200": _json(_ref("TemplateDef")), **NOT_FOUND}),
        "put": _op(
            "Replace a template",
            {"200": _json(_ref("TemplateDef")), "400": _err("not JSON"), **NOT_FOUND, **INVALID},
            requestBody=FLOW_BODY,
        ),
        "delete": _op(
            "Delete a template",
            {"204": {"description": "deleted"}, **NOT_FOUND, "409": _err("another template switches to it")},
        ),
    },
    "/admin/api/conversations": {
        "get": _op(
            "Live conversations, most recent first",
            {"200": _list("conversations", "Conversation"), **BAD},
            parameters=[
                TEMPLATE,
                _query("step", "only at this step"),
                _query("user", "user key, phone or BSUID"),
                LIMIT,
                OFFSET,
            ],
        ),
    },
    "/admin/api/conversations/{user}": {
        "parameters": [_path("user")],
        "get": _op(
            "One customer's conversation and what they were last asked",
            {
                "200": _json(
                    {
                        "allOf": [
                            _ref("Conversation"),
                            _obj(["menu"], menu={"type": "array", "items": {"type": "object"}}),
                        ]
                    }
                ),
                **NOT_FOUND,
            },
        ),
    },
    "/admin/api/conversations/{user}/end": {
        "parameters": [_path("user")],
        "post": _op(
            "End the conversation (recorded as cancelled at its step)",
            {"200": _json(_obj(["user_key", "ended"], user_key=STR, ended={"const": True})), **NOT_FOUND},
        ),
    },
    "/admin/api/submissions": {
        "get": _op(
            "Answers of completed flows, oldest first",
            {"200": _list("submissions", "Submission"), **BAD},
            parameters=[TEMPLATE, SINCE, UNTIL, LIMIT, OFFSET, REVEAL],
        ),
    },
    "/admin/api/submissions.csv": {
        "get": _op(
            "Submissions as CSV: submitted_at, template, user, then one column per answer key",
            {"200": {"description": "CSV", "content": {"text/csv": {"schema": STR}}}, **BAD},
            parameters=[TEMPLATE, SINCE, UNTIL, REVEAL],
        ),
    },
    "/admin/api/stats/{template}": {
        "parameters": [_path("template")],
        "get": _op(
            "Drop-off per step: runs that reached each step, and where they completed or left",
            {"200": _json(_ref("Funnel")), **BAD, **NOT_FOUND},
            parameters=[SINCE, UNTIL],
        ),
    },
    "/admin/api/outbound": {
        "get": _op(
            "Delivery status of outbound messages by wamid, by user, or all; newest first",
            {"200": _list("messages", "OutboundMessage"), **BAD},
            parameters=[
                _query("wamid", "the message id WhatsApp gave"),
                _query("user", "user key"),
                {**LIMIT, "description": "at most this many (default 50)"},
            ],
        ),
    },
    "/admin/api/message-templates": {
        "get": _op(
            "Message templates as Meta last reported them (status, category, quality webhooks)",
            {"200": _list("message_templates", "MessageTemplateStatus")},
        ),
    },
    "/admin/api/openapi.json": {
        "get": {
            "summary": "This description",
            "security": [],
            "responses": {"200": _json({"type": "object"})},
        },
    },
}

PATHS.update(handoffs_openapi.PATHS)

_parts = (notifications_openapi,)
for _part in _parts:  # each feature's routes describe themselves beside their code
    if set(_part.SCHEMAS) & (set(SCHEMAS) | set(_flow_defs)) or set(_part.PATHS) & set(PATHS):
        raise RuntimeError(f"{_part.__name__} redefines a path or schema of the admin API")

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "parley admin API", "version": "1"},
    "paths": {**PATHS, **{path: item for part in _parts for path, item in part.PATHS.items()}},
    "components": {
        "schemas": {**_flow_defs, **SCHEMAS, **{name: s for part in _parts for name, s in part.SCHEMAS.items()}},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
}
