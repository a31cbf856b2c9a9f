"""A notification request from its JSON shape (DESIGN.md, "Business-initiated messages").

Only the shape is checked here, each refusal naming the field at fault; whether the
template exists and the customer may get it is ``conversation.notifications``' to say.
"""

from __future__ import annotations

from typing import Any

from conversation.notifications import Invalid, NotificationRequest, TemplateRequest

MAX_KEY = 200
MAX_TEXT = 4096  # WhatsApp's limit for a text message


def parse_request(data: Any) -> NotificationRequest:
    """A request from its JSON shape (DESIGN.md); Invalid names the first field at fault."""
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object", "(body)")
    unknown = sorted(set(data) - {"to", "idempotency_key", "template", "text", "phone_number_id"})
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r}", unknown[0])
    for name in ("to", "idempotency_key"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise Invalid("is required (a non-empty string)", name)
    if len(data["idempotency_key"]) > MAX_KEY:
        raise Invalid(f"at most {MAX_KEY} characters", "idempotency_key")
    number = data.get("phone_number_id")
    if number is not None and (not isinstance(number, str) or not number.strip() or len(number) > 64):
        raise Invalid("must be the business number's id, a non-empty string", "phone_number_id")
    if ("template" in data) == ("text" in data):
        raise Invalid("give either template or text", "template")
    if "text" in data:
        body = data["text"]
        if not isinstance(body, str) or not body.strip():
            raise Invalid("is required (a non-empty string)", "text")
        if len(body) > MAX_TEXT:
            raise Invalid(f"at most {MAX_TEXT} characters (WhatsApp limit for a text message)", "text")
        return NotificationRequest(data["to"].strip(), data["idempotency_key"], text=body, phone_number_id=number)
    spec = data["template"]
    if not isinstance(spec, dict):
        raise Invalid("must be an object {name, language, parameters}", "template")
    extra = sorted(set(spec) - {"name", "language", "parameters"})
    if extra:
        raise Invalid(f"unknown field {extra[0]!r}", f"template.{extra[0]}")
    call = TemplateRequest(spec.get("name"), spec.get("language"), spec.get("parameters", []))  # type: ignore[arg-type]
    return NotificationRequest(data["to"].strip(), data["idempotency_key"], template=call, phone_number_id=number)
