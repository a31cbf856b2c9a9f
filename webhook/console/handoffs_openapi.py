"""OpenAPI 3.1 entries of ``/admin/api/handoffs``, to merge into the admin API's description.

``PATHS`` joins the description's ``paths`` and ``SCHEMAS`` its ``components/schemas``;
errors refer to the description's existing ``Error`` schema.
"""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/{model}"
STR = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {**responses, "401": _err("no bearer token"), "403": _err("wrong token")},
        **extra,
    }


USER = {"name": "user", "in": "path", "required": True, "description": "BSUID, else phone number", "schema": STR}
NOT_HANDED_OFF = _err("the customer is not handed off")

SCHEMAS: dict[str, Any] = {
    "WaitingCustomer": _obj(
        ["user", "since", "last_message", "waiting"],
        user=STR,
        since={**TIME, "description": "when the customer was handed to a person"},
        last_message={"type": ["string", "null"], "description": "the customer's last message"},
        waiting={"type": "integer", "minimum": 0, "description": "messages since a person last wrote"},
    ),
    "TranscriptLine": _obj(["direction", "text", "at"], direction={"enum": ["in", "out"]}, text=STR, at=TIME),
    "PersonReply": _obj(["text"], text={"type": "string", "minLength": 1, "maxLength": 4096}),
}

PATHS: dict[str, Any] = {
    "/admin/api/handoffs": {
        "get": _op(
            "Customers waiting for a person, oldest first",
            {"200": _json({"type": "array", "items": _ref("WaitingCustomer")})},
        ),
    },
    "/admin/api/handoffs/{user}/messages": {
        "parameters": [USER],
        "get": _op(
            "The customer's transcript, inbound and outbound, in order (including the bot's messages)",
            {
                "200": _json({"type": "array", "items": _ref("TranscriptLine")}),
                "404": _err("the customer never wrote"),
            },
        ),
        "post": _op(
            "A person's message to the customer, sent through the outbox",
            {
                "202": _json(
                    _obj(["id", "status"], id={"type": "integer"}, status={"const": "pending"}), "in the outbox"
                ),
                "400": _err("the body is not a JSON object"),
                "409": _err("not handed off, or the 24-hour window is closed; nothing queued"),
                "422": _err("text missing, empty or too long"),
            },
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("PersonReply")}}},
        ),
    },
    "/admin/api/handoffs/{user}/release": {
        "parameters": [USER],
        "post": _op(
            "Give the customer back to the bot",
            {"200": _json(_obj(["user", "released"], user=STR, released={"const": True})), "404": NOT_HANDED_OFF},
        ),
    },
}
