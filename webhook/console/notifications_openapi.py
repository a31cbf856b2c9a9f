"""OpenAPI 3.1 description of the notification routes (``webhook/console/notifications.py``).

``PATHS`` and ``SCHEMAS`` join the admin API's description (its ``paths`` and
``components.schemas``); refs point at ``#/components/schemas/<name>`` there.
"""

from __future__ import annotations

from typing import Any

from conversation.notification_requests import MAX_KEY, MAX_TEXT
from conversation.notifications import PUBLIC_STATUS


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("NotificationError"), description)


STR = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
_nullable_time = {"type": ["string", "null"], "format": "date-time"}
_statuses = sorted(set(PUBLIC_STATUS.values()))
_template = _obj(
    ["name", "language"],
    name={"type": "string", "description": "as declared in templates/message_templates.yaml"},
    language={"type": "string", "examples": ["en_US"]},
    parameters={"type": "array", "items": STR, "description": "the body's {{1}}, {{2}}, ... in order"},
)

SCHEMAS: dict[str, Any] = {
    "NotificationError": _obj(
        ["error"],
        error=_obj(
            ["status", "message"],
            status={"type": "integer"},
            message=STR,
            field={"type": "string", "description": "the request field at fault, e.g. template.parameters"},
        ),
    ),
    "NotificationRequest": {
        **_obj(
            ["to", "idempotency_key"],
            to={"type": "string", "pattern": r"\S", "description": "phone number with country code, or BSUID"},
            idempotency_key={"type": "string", "pattern": r"\S", "maxLength": MAX_KEY},
            template={**_template, "additionalProperties": False},
            text={"type": "string", "pattern": r"\S", "maxLength": MAX_TEXT, "description": "inside the window only"},
            phone_number_id={"type": "string", "description": "default: the number the customer last wrote to"},
        ),
        "oneOf": [{"required": ["template"]}, {"required": ["text"]}],
        "additionalProperties": False,
    },
    "NotificationQueued": _obj(["id", "status"], id={"type": "integer"}, status={"enum": _statuses}),
    "Notification": _obj(
        ["id", "status", "error", "to", "idempotency_key", "phone_number_id", "content", "created_at"],
        id={"type": "integer"},
        status={"enum": _statuses},
        error={
            "oneOf": [
                {"type": "null"},
                _obj(["code", "message"], code={"type": ["integer", "null"]}, message={"type": ["string", "null"]}),
            ],
            "description": "when failed: Meta's error code and text",
        },
        to={"type": "string", "description": "the customer's user key"},
        idempotency_key=STR,
        phone_number_id=STR,
        content={"type": "object", "description": "the WhatsApp message content sent"},
        wamid={"type": ["string", "null"]},
        created_at=TIME,
        status_at=_nullable_time,
    ),
    "ContactNotifications": _obj(
        ["user_key", "opted_out", "opted_out_at", "windows"],
        user_key=STR,
        phone_number={"type": ["string", "null"]},
        user_id={"type": ["string", "null"]},
        opted_out={"type": "boolean"},
        opted_out_at=_nullable_time,
        marketing_stopped_at={**_nullable_time, "description": "the customer stopped marketing templates in WhatsApp"},
        windows={
            "type": "array",
            "description": "per business number the customer wrote to, most recent first",
            "items": _obj(
                ["phone_number_id", "last_inbound_at", "closes_at", "open"],
                phone_number_id=STR,
                last_inbound_at=TIME,
                closes_at=TIME,
                open={"type": "boolean"},
            ),
        },
    ),
}

AUTH = {"401": _err("no bearer token"), "403": _err("wrong token")}
QUEUED = {
    "202": _json(_ref("NotificationQueued"), "queued"),
    "200": _json(_ref("NotificationQueued"), "this idempotency key was queued before: the same notification"),
    "409": _err(
        "the customer opted out, a text outside the 24-hour window, a template Meta paused, disabled or"
        " rejected, or a marketing template to a customer who stopped marketing messages"
    ),
    "422": _err("unknown template, wrong language or parameter count, a missing field: the field is named"),
}
_path = {"in": "path", "required": True}

PATHS: dict[str, Any] = {
    "/admin/api/notifications": {
        "post": {
            "summary": "Send a message template, or a text inside the window, to a customer (queued, sent once)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NotificationRequest")}}},
            "responses": {**QUEUED, "400": _err("not JSON"), **AUTH},
        },
    },
    "/admin/api/notifications/{id}": {
        "parameters": [{"name": "id", **_path, "schema": {"type": "integer"}}],
        "get": {
            "summary": "A notification's delivery status, from Meta's status webhooks",
            "responses": {"200": _json(_ref("Notification"), "OK"), "404": _err("no such notification"), **AUTH},
        },
    },
    "/admin/api/orders/{order}/ready": {
        "parameters": [{"name": "order", **_path, "schema": STR, "examples": ["ORD-000002"]}],
        "post": {
            "summary": "Tell the customer who placed the order that it is ready (order_ready; once per order)",
            "responses": {**QUEUED, "404": _err("no such order"), **AUTH},
        },
    },
    "/admin/api/contacts/{user}": {
        "parameters": [{"name": "user", **_path, "schema": STR}],
        "get": {
            "summary": "A customer's 24-hour window per business number and notification opt-out",
            "responses": {"200": _json(_ref("ContactNotifications"), "OK"), "404": _err("no such customer"), **AUTH},
        },
    },
}
