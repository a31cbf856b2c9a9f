"""The sandbox Graph API: where replies go when no Meta access token is configured.

It speaks Graph's request and response shapes for the messages endpoint, enforces the
WhatsApp limits (lengths and counts of texts, buttons, rows) so a message Meta would
refuse is refused here first, and records every accepted message as a
:class:`SandboxMessage` so a newcomer can read the bot's replies (``GET /sandbox``) and
tests can poll them (``GET /sandbox/messages``).
Never registered in production.
"""

from __future__ import annotations

import hmac
import re
import uuid
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template_string, request
from sqlalchemy import or_, select

from conversation.db import session_scope
from conversation.models import InboundMessage, SandboxMessage
from conversation.template_messages import render
from settings import Settings, get_settings
from templates.message_templates import Catalogue, load_catalogue
from webhook import sandbox_enabled
from webhook.console import sandbox_templates

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")

PHONE = re.compile(r"^\+?\d{5,15}$")
BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$")
TEXT_BODY_MAX = 4096
# Meta's current list page allows 4096, the legacy reference 1024 for every interactive
# body: the sandbox holds to 1024 so nothing it accepts is refused by Meta.
INTERACTIVE_BODY_MAX = 1024
HEADER_MAX = FOOTER_MAX = 60
BUTTONS_MAX, BUTTON_TITLE_MAX, BUTTON_ID_MAX = 3, 20, 256
LIST_BUTTON_MAX, SECTIONS_MAX, ROWS_MAX = 20, 10, 10
SECTION_TITLE_MAX, ROW_ID_MAX, ROW_TITLE_MAX, ROW_DESCRIPTION_MAX = 24, 200, 24, 72
MEDIA_HEADERS = ("image", "video", "document")


class Invalid(Exception):
    """The request breaks a Graph rule; the text becomes ``error_data.details``."""


def _graph_error(status: int, code: int, message: str, details: str | None = None) -> tuple[Response, int]:
    error: dict[str, Any] = {
        "message": f"(#{code}) {message}",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "Sandbox" + uuid.uuid4().hex[:16],
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return jsonify({"error": error}), status


def _text(value: Any, where: str, limit: int, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{where} is required and must be a non-empty string")
    if len(value) > limit:
        raise Invalid(f"{where} is {len(value)} characters; the limit is {limit}")


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{where} is required and must be an object")
    return value


def _items(value: Any, where: str, low: int, high: int) -> list[Any]:
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise Invalid(f"{where} must be a list of {low} to {high} items")
    return value


def _unique(values: list[str], where: str) -> None:
    if len(set(values)) != len(values):
        raise Invalid(f"{where} must be unique")


def _header(header: Any, allow_media: bool) -> None:
    if header is None:
        return
    header = _obj(header, "interactive.header")
    kind = header.get("type")
    if kind == "text":
        _text(header.get("text"), "interactive.header.text", HEADER_MAX)
    elif allow_media and kind in MEDIA_HEADERS:
        media = _obj(header.get(kind), f"interactive.header.{kind}")
        if not (media.get("id") or media.get("link")):
            raise Invalid(f"interactive.header.{kind} needs an id or a link")
    else:
        allowed = "text, image, video or document" if allow_media else "text"
        raise Invalid(f"interactive.header.type must be {allowed}")


def _buttons(action: dict[str, Any]) -> None:
    buttons = _items(action.get("buttons"), "interactive.action.buttons", 1, BUTTONS_MAX)
    ids, titles = [], []
    for i, button in enumerate(buttons):
        where = f"interactive.action.buttons[{i}]"
        button = _obj(button, where)
        if button.get("type") != "reply":
            raise Invalid(f"{where}.type must be 'reply'")
        reply = _obj(button.get("reply"), f"{where}.reply")
        _text(reply.get("id"), f"{where}.reply.id", BUTTON_ID_MAX)
        _text(reply.get("title"), f"{where}.reply.title", BUTTON_TITLE_MAX)
        ids.append(reply["id"])
        titles.append(reply["title"])
    _unique(ids, "button ids")
    _unique(titles, "button titles")


def _list(action: dict[str, Any]) -> None:
    _text(action.get("button"), "interactive.action.button", LIST_BUTTON_MAX)
    sections = _items(action.get("sections"), "interactive.action.sections", 1, SECTIONS_MAX)
    ids: list[str] = []
    for i, section in enumerate(sections):
        where = f"interactive.action.sections[{i}]"
        section = _obj(section, where)
        # Meta's current page requires a section title always (legacy: only with >1).
        _text(section.get("title"), f"{where}.title", SECTION_TITLE_MAX)
        for j, row in enumerate(_items(section.get("rows"), f"{where}.rows", 1, ROWS_MAX)):
            row = _obj(row, f"{where}.rows[{j}]")
            _text(row.get("id"), f"{where}.rows[{j}].id", ROW_ID_MAX)
            _text(row.get("title"), f"{where}.rows[{j}].title", ROW_TITLE_MAX)
            _text(row.get("description"), f"{where}.rows[{j}].description", ROW_DESCRIPTION_MAX, False)
            ids.append(row["id"])
    if len(ids) > ROWS_MAX:
        raise Invalid(f"a list has {len(ids)} rows; the limit is {ROWS_MAX} across all sections")
    _unique(ids, "row ids")


def _interactive(interactive: Any) -> None:
    interactive = _obj(interactive, "interactive")
    kind = interactive.get("type")
    if kind not in ("button", "list"):
        raise Invalid("interactive.type must be 'button' or 'list'")
    _header(interactive.get("header"), allow_media=kind == "button")
    _text(_obj(interactive.get("body"), "interactive.body").get("text"), "interactive.body.text", INTERACTIVE_BODY_MAX)
    if interactive.get("footer") is not None:
        _text(_obj(interactive["footer"], "interactive.footer").get("text"), "interactive.footer.text", FOOTER_MAX)
    action = _obj(interactive.get("action"), "interactive.action")
    if kind == "button":
        _buttons(action)
    else:
        _list(action)


def validate(body: Any) -> tuple[str, str | None]:
    """Check a messages-endpoint body; return (kind, recipient). Raises Invalid."""
    body = _obj(body, "the request body")
    if body.get("messaging_product") != "whatsapp":
        raise Invalid("messaging_product must be 'whatsapp'")
    if body.get("status") is not None:
        if body["status"] != "read":
            raise Invalid("status must be 'read'")
        _text(body.get("message_id"), "message_id", 256)
        indicator = body.get("typing_indicator")
        if indicator is not None and indicator != {"type": "text"}:
            raise Invalid("typing_indicator must be {'type': 'text'}")
        return "mark_read", None
    if body.get("recipient_type", "individual") != "individual":
        raise Invalid("recipient_type must be 'individual'")
    to, recipient = body.get("to"), body.get("recipient")
    # parley addresses by phone when known, else by BSUID: exactly one.
    if (to is None) == (recipient is None):
        raise Invalid("exactly one of 'to' (phone) and 'recipient' (BSUID) is required")
    if to is not None and not (isinstance(to, str) and PHONE.match(to)):
        raise Invalid("'to' must be a phone number, e.g. +15550002222")
    if recipient is not None and not (isinstance(recipient, str) and BSUID.match(recipient)):
        raise Invalid("'recipient' must be a business-scoped user id, e.g. US.13491208655302741918")
    kind = body.get("type")
    if kind == "text":
        text = _obj(body.get("text"), "text")
        _text(text.get("body"), "text.body", TEXT_BODY_MAX)
        if not isinstance(text.get("preview_url", False), bool):
            raise Invalid("text.preview_url must be true or false")
    elif kind == "interactive":
        _interactive(body.get("interactive"))
    elif kind == "template":
        problem = sandbox_templates.shape_problem(body.get("template"))
        if problem is not None:
            raise Invalid(problem)
    else:
        raise Invalid("type must be 'text', 'interactive' or 'template' in the sandbox")
    return "message", to or recipient


def _settings() -> Settings:
    return current_app.config.get("PARLEY_SETTINGS") or get_settings()


@bp.post("/graph/<version>/<phone_number_id>/messages")
def messages(version: str, phone_number_id: str) -> tuple[Response, int]:
    expected = f"Bearer {_settings().access_token}".encode()
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
        return _graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    try:
        kind, recipient = validate(request.get_json(silent=True))
    except Invalid as exc:
        return _graph_error(400, 100, "Invalid parameter", str(exc))
    body = request.get_json()
    if body.get("type") == "template":
        refused = sandbox_templates.refusal(body, load_catalogue(_settings().templates_dir).catalogue)
        if refused is not None:
            return _graph_error(*refused)
    wamid = "wamid.SANDBOX" + uuid.uuid4().hex.upper()
    with session_scope() as session:
        if kind == "mark_read":
            recipient = _reader(session, body["message_id"])
        session.add(
            SandboxMessage(
                wamid=wamid, phone_number_id=phone_number_id, recipient=recipient or "?", kind=kind, body=body
            )
        )
    if kind == "mark_read":
        return jsonify({"success": True}), 200
    if body.get("to"):
        contact = {"input": body["to"], "wa_id": body["to"].lstrip("+")}
    else:
        contact = {"input": recipient, "user_id": recipient}
    return jsonify({"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}), 200


def _reader(session: Any, message_id: str) -> str | None:
    """Who a read receipt is for, so it shows in that user's thread (None: unknown)."""
    user_key = session.scalar(select(InboundMessage.user_key).where(InboundMessage.wamid == message_id))
    if user_key and user_key.isdigit():
        return "+" + user_key
    return user_key


def _row(m: SandboxMessage, catalogue: Catalogue) -> dict[str, Any]:
    shown = render(m.body, catalogue) if m.kind == "message" else None
    return {
        **({"rendered": shown.as_dict()} if shown is not None else {}),
        "id": m.id,
        "wamid": m.wamid,
        "phone_number_id": m.phone_number_id,
        "recipient": m.recipient,
        "kind": m.kind,
        "body": m.body,
        "created_at": m.created_at.isoformat(),
    }


@bp.get("/messages")
def list_messages() -> Response | tuple[Response, int]:
    """Recorded messages, oldest first: ``?recipient=`` (phone with or without +, or
    BSUID), ``?after_id=N`` to poll for new ones, ``?limit=`` (default 100, max 1000)."""
    try:
        after_id = int(request.args.get("after_id", 0))
        limit = min(max(int(request.args.get("limit", 100)), 1), 1000)
    except ValueError:
        return jsonify({"error": "after_id and limit must be whole numbers"}), 400
    query = select(SandboxMessage).where(SandboxMessage.id > after_id)
    recipient = request.args.get("recipient")
    if recipient:
        # A phone may be asked for with or without its +; the sandbox stores what was sent.
        digits = recipient.lstrip("+")
        forms = {digits, "+" + digits} if PHONE.match(recipient) else {recipient}
        query = query.where(or_(*(SandboxMessage.recipient == f for f in forms)))
    with session_scope() as session:
        rows = session.scalars(query.order_by(SandboxMessage.id).limit(limit)).all()
        catalogue = load_catalogue(_settings().templates_dir).catalogue
        return jsonify([_row(m, catalogue) for m in rows])


def _summary(body: dict[str, Any], catalogue: Catalogue) -> tuple[str, list[str]]:
    """What the user would see: the text, and the buttons or rows to tap."""
    if body.get("status") == "read":
        return "✓✓ read", []
    if body.get("type") == "template":
        return sandbox_templates.summary(body, catalogue)
    if body.get("type") == "text":
        return str(body.get("text", {}).get("body", "")), []
    interactive = body.get("interactive", {})
    action = interactive.get("action", {})
    options = [b.get("reply", {}).get("title", "") for b in action.get("buttons", [])]
    for section in action.get("sections", []):
        options += [f"{r.get('title', '')} [{r.get('id', '')}]" for r in section.get("rows", [])]
    return str(interactive.get("body", {}).get("text", "")), options


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>parley sandbox</title>
<style>body{font-family:sans-serif;max-width:48em;margin:1em auto}li{margin:.6em 0}
small{color:#666}.opt{display:inline-block;border:1px solid #888;border-radius:4px;padding:0 .4em;margin:.1em}
pre{white-space:pre-wrap;margin:.2em 0}</style></head>
<body><h1>parley sandbox</h1>
<p>Replies the bot sent while no Meta account is configured (newest first, refreshes every 3 s).
JSON: <a href="{{ url_for('sandbox.list_messages') }}">/sandbox/messages</a></p>
<ol reversed>
{% for m, text, options in rows %}
<li><small>#{{ m.id }} {{ m.created_at.strftime("%H:%M:%S") }} to <b>{{ m.recipient }}</b></small>
<pre>{{ text }}</pre>{% for o in options %}<span class="opt">{{ o }}</span>{% endfor %}</li>
{% else %}<li>No messages yet. Send the bot a webhook and watch this page.</li>{% endfor %}
</ol></body></html>"""


@bp.get("")
@bp.get("/")  # both spellings of the page: the banner and people type either
def page() -> str:
    with session_scope() as session:
        latest = session.scalars(select(SandboxMessage).order_by(SandboxMessage.id.desc()).limit(50)).all()
        # render_template_string autoescapes: message text is user-controlled.
        catalogue = load_catalogue(_settings().templates_dir).catalogue
        return render_template_string(PAGE, rows=[(m, *_summary(m.body, catalogue)) for m in latest])


def init_app(app: Flask) -> None:
    """Register the sandbox when ``webhook.sandbox_enabled`` says so (no Meta token, not production)."""
    if sandbox_enabled(app.config.get("PARLEY_SETTINGS") or get_settings()):
        app.register_blueprint(bp)
