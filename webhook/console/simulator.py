"""The web chat simulator: ``/simulator/``, a WhatsApp-like page over the real pipeline.

Nothing here talks to the engine. A message typed on the page becomes a Meta-shaped
webhook body, signed with the app secret and POSTed over HTTP to this receiver's own
``/webhook``; a worker handles it and the reply reaches the sandbox Graph API, where the
page polls for it. A stuck worker therefore shows as a reply that never comes.

On by default with the sandbox outside production; ``PARLEY_SIMULATOR=true`` turns it on
anywhere and then every ``/simulator/api`` call needs ``Authorization: Bearer
<PARLEY_ADMIN_TOKEN>`` (it can sign webhooks, so it is as powerful as the app secret).
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_from_directory
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

import settings as settings_module
from conversation.db import session_scope
from conversation.models import Contact, ConversationState, InboundMessage, OutboundMessage, SandboxMessage, utcnow
from conversation.service import ConversationService, to_definition
from settings import Settings
from templates.graph import GraphvizMissing, build_graph, render, to_mermaid
from webhook import replays
from webhook.signature import sign

bp = Blueprint(
    "simulator", __name__, url_prefix="/simulator", static_folder="static/simulator", static_url_path="/static"
)

PHONE = re.compile(r"^\d{5,15}$")
BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$")
DEFAULT_PHONE_NUMBER_ID = "100000000000001"  # the business number send-test uses too
DISPLAY_NUMBER = "15550000000"
POST_TIMEOUT = 10.0
REPLAY_BUDGET_SECONDS = 25.0  # under gunicorn's 30 s worker timeout
WAIT_PER_PAYLOAD = 8.0


class BadInput(ValueError):
    """The caller's fault; becomes a 400 with this text."""


@dataclass(frozen=True)
class Tap:
    """A tapped reply button (``kind="button"``) or list row (``kind="list"``)."""

    id: str
    title: str
    kind: str = "button"
    description: str | None = None
    context_wamid: str | None = None


def normalize_user(raw: Any) -> str:
    """Phone digits (``+`` and spaces dropped) or a BSUID; raises BadInput otherwise."""
    text = re.sub(r"[\s()-]", "", raw) if isinstance(raw, str) else ""
    text = text.lstrip("+")
    if PHONE.match(text) or BSUID.match(text):
        return text
    raise BadInput("user must be phone digits (e.g. 15550100123) or a BSUID (e.g. US.13491208655302741918)")


def inbound_webhook(
    user: str,
    *,
    text: str | None = None,
    tap: Tap | None = None,
    name: str = "Test User",
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    wamid: str | None = None,
) -> dict[str, Any]:
    """One customer message in Meta's webhook shape (facts §2): a BSUID ``user`` has no phone."""
    item: dict[str, Any] = {"id": wamid or new_wamid(), "timestamp": str(int(time.time()))}
    contact: dict[str, Any] = {"profile": {"name": name}}
    if BSUID.match(user):
        contact["user_id"] = user  # a username user: Meta withholds the phone
    else:
        contact["wa_id"] = user
        item["from"] = user
    if tap is not None:
        reply_type = "list_reply" if tap.kind == "list" else "button_reply"
        reply: dict[str, Any] = {"id": tap.id, "title": tap.title}
        if tap.kind == "list" and tap.description:
            reply["description"] = tap.description
        item |= {"type": "interactive", "interactive": {"type": reply_type, reply_type: reply}}
        if tap.context_wamid:
            item["context"] = {"from": DISPLAY_NUMBER, "id": tap.context_wamid}
    else:
        item |= {"type": "text", "text": {"body": text or ""}}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id},
        "contacts": [contact],
        "messages": [item],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }


def new_wamid() -> str:
    return "wamid.SIM" + uuid.uuid4().hex.upper()


def post_webhook(body: dict[str, Any], settings: Settings, url: str | None = None) -> requests.Response:
    """Sign ``body`` as Meta does and POST it to the receiver; raises requests errors."""
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, settings.app_secret)}
    return requests.post(url or f"{settings.public_url}/webhook", data=raw, headers=headers, timeout=POST_TIMEOUT)


# --- reading what happened -------------------------------------------------------------


def _contact(session: Session, user: str) -> Contact | None:
    return session.get(Contact, user) or session.scalar(select(Contact).where(Contact.phone_number == user).limit(1))


def user_key(session: Session, user: str) -> str:
    """The key the engine files ``user`` under: their BSUID when Meta ever sent one."""
    contact = _contact(session, user)
    return contact.user_key if contact is not None else user


def _recipients(session: Session, user: str) -> set[str]:
    """Every ``to``/``recipient`` the sender may have used for this customer."""
    contact = _contact(session, user)
    known = {user, contact.phone_number, contact.user_id, contact.user_key} if contact else {user}
    return {k if BSUID.match(k) else "+" + k for k in known if k}


def replies(session: Session, settings: Settings, user: str, after_id: int = 0, limit: int = 200) -> list[dict]:
    """The bot's messages and read receipts for ``user``, oldest first, ids above ``after_id``.

    With the sandbox: what the sandbox Graph API received (proof the sender got through).
    Without it (live mode): the outbox rows, with their delivery status.
    """
    if settings.sandbox:
        sandbox_rows = session.scalars(
            select(SandboxMessage)
            .where(SandboxMessage.recipient.in_(_recipients(session, user)), SandboxMessage.id > after_id)
            .order_by(SandboxMessage.id)
            .limit(limit)
        )
        return [_reply(m.id, m.kind, m.wamid, m.body, m.created_at) for m in sandbox_rows]
    outbox_rows = session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.user_key == user_key(session, user), OutboundMessage.id > after_id)
        .order_by(OutboundMessage.id)
        .limit(limit)
    )
    return [_reply(r.id, r.kind, r.wamid, r.content, r.created_at, r.status, r.last_error) for r in outbox_rows]


def _reply(
    id_: int,
    kind: str,
    wamid: str | None,
    body: dict,
    at: datetime,
    status: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    content = {k: v for k, v in body.items() if k in {"type", "text", "interactive"}}
    out: dict[str, Any] = {"id": id_, "dir": "out", "kind": kind, "wamid": wamid, "at": at.isoformat()}
    if kind == "mark_read":
        out["read"] = body.get("message_id")
    else:
        out["content"] = content
    if status is not None:
        out |= {"status": status, "error": error}
    return out


def inbound_text(item: dict[str, Any]) -> str:
    """What the customer's bubble shows for a recorded inbound message item."""
    kind = item.get("type")
    body = item.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "text":
        return str(body.get("body", ""))
    if kind == "interactive":
        reply = body.get(str(body.get("type")), {})
        return str(reply.get("title", "")) if isinstance(reply, dict) else ""
    if kind == "button":
        return str(body.get("text", ""))
    return f"[{kind}]"


def history(session: Session, settings: Settings, user: str) -> dict[str, Any]:
    """The whole thread as the pipeline recorded it: inbound log and replies, by time."""
    key = user_key(session, user)
    rows = session.scalars(
        select(InboundMessage).where(InboundMessage.user_key == key).order_by(InboundMessage.id.desc()).limit(200)
    ).all()
    inbound = [
        {
            "dir": "in",
            "wamid": r.wamid,
            "text": inbound_text(r.payload or {}),
            "outcome": r.outcome,
            "at": r.received_at.isoformat(),
        }
        for r in reversed(rows)
    ]
    out = replies(session, settings, user, 0, 1000)
    items = sorted(inbound + out, key=lambda i: (i["at"], i["dir"] == "out"))
    return {"items": items, "last_id": max((r["id"] for r in out), default=0)}


def business_number(session: Session, settings: Settings) -> str:
    """The ``phone_number_id`` the simulated customer writes to, which replies go out from.

    The sandbox takes any; live, Graph only knows the real one, so use the number Meta
    last delivered a (not simulated) message to.
    """
    if settings.sandbox:
        return DEFAULT_PHONE_NUMBER_ID
    seen = session.scalar(
        select(InboundMessage.phone_number_id)
        .where(InboundMessage.phone_number_id.is_not(None), InboundMessage.wamid.not_like("wamid.SIM%"))
        .order_by(InboundMessage.id.desc())
        .limit(1)
    )
    return seen or DEFAULT_PHONE_NUMBER_ID


def conversation_state(session: Session, user: str) -> dict[str, Any] | None:
    c = ConversationState
    row = session.scalar(select(c).where(or_(c.user_key == user, c.phone_number == user, c.user_id == user)).limit(1))
    if row is None:
        return None
    return {
        "user_key": row.user_key,
        "template": row.conversation_flow,
        "step": row.current_step,
        "context": row.context or {},
        "expires_at": row.expires_at.isoformat(),
        "last_interaction": row.last_interaction.isoformat(),
        "live": row.expires_at > utcnow(),
    }


# --- the HTTP API ------------------------------------------------------------------------


def _settings() -> Settings:
    return current_app.config["PARLEY_SETTINGS"]


def enabled(settings: Settings) -> bool:
    if settings.simulator is not None:
        return settings.simulator
    return settings.sandbox and not settings.production


@bp.before_request
def _authenticate() -> Response | None:
    settings = _settings()
    # The page and its static files hold no data; the API does.
    if settings.simulator is not True or request.endpoint in {"simulator.page", "simulator.static"}:
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    token = settings.admin_token or ""
    if scheme.lower() == "bearer" and token and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    response = jsonify(error="send Authorization: Bearer <PARLEY_ADMIN_TOKEN>")
    response.status_code = 401
    return response


@bp.errorhandler(BadInput)
def _bad_input(exc: BadInput) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 400


@bp.get("/")
def page() -> Response:
    response = send_from_directory(bp.static_folder or "", "index.html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/config")
def config() -> Response:
    settings = _settings()
    with session_scope() as session:
        names = [t.template_name for t in ConversationService(session).list_templates(active_only=True)]
        users = session.scalars(select(Contact).order_by(Contact.last_seen_at.desc()).limit(30)).all()
        recent = [{"user": u.user_key, "name": u.profile_name} for u in users]
    dev_token = getattr(settings_module, "DEV_ADMIN_TOKEN", None)
    return jsonify(
        sandbox=settings.sandbox,
        protected=settings.simulator is True,
        # The public development token only: the page may then read the admin funnel.
        admin_token=settings.admin_token if settings.admin_token == dev_token else None,
        templates=names,
        users=recent,
        replays=replays.catalogue(),
    )


@bp.post("/api/send")
def send() -> tuple[Response, int]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("send a JSON object: {user, text} or {user, tap: {id, title, kind}}")
    user = normalize_user(data.get("user"))
    text, raw_tap, tap = data.get("text"), data.get("tap"), None
    if isinstance(raw_tap, dict):
        if not (isinstance(raw_tap.get("id"), str) and isinstance(raw_tap.get("title"), str)):
            raise BadInput("tap needs an id and a title")
        kind = "list" if raw_tap.get("kind") == "list" else "button"
        tap = Tap(raw_tap["id"], raw_tap["title"], kind, raw_tap.get("description"), raw_tap.get("context"))
    elif not isinstance(text, str) or not text.strip() or len(text) > 4096:
        raise BadInput("text must be 1 to 4096 characters (or send a tap)")
    name = str(data.get("name") or "Test User")[:256]
    wamid = new_wamid()
    with session_scope() as session:
        number = business_number(session, _settings())
    body = inbound_webhook(user, text=text, tap=tap, name=name, phone_number_id=number, wamid=wamid)
    try:
        answer = post_webhook(body, _settings())
    except requests.RequestException as exc:
        message = f"the receiver at {_settings().public_url} did not answer ({exc.__class__.__name__}); is PARLEY_PUBLIC_URL right?"
        return jsonify(error=message, wamid=wamid), 502
    return jsonify(wamid=wamid, webhook_status=answer.status_code, webhook_answer=answer.text.strip()[:200]), 200


@bp.get("/api/state")
def state() -> Response:
    user = normalize_user(request.args.get("user"))
    with session_scope() as session:
        return jsonify(user=user, conversation=conversation_state(session, user), now=utcnow().isoformat())


@bp.get("/api/replies")
def list_replies() -> Response:
    user = normalize_user(request.args.get("user"))
    try:
        after_id = int(request.args.get("after_id", 0))
    except ValueError:
        raise BadInput("after_id must be a whole number") from None
    with session_scope() as session:
        return jsonify(messages=replies(session, _settings(), user, after_id))


@bp.get("/api/history")
def thread() -> Response:
    user = normalize_user(request.args.get("user"))
    with session_scope() as session:
        return jsonify(history(session, _settings(), user))


@bp.get("/api/diagram/<template>")
def diagram(template: str) -> Response | tuple[Response, int]:
    highlight = request.args.get("highlight") or None
    with session_scope() as session:
        service = ConversationService(session)
        row = service.get_template(template)
        if row is None:
            return jsonify(error=f"no template named {template}"), 404
        graph = build_graph(to_definition(row), [t.template_name for t in service.list_templates()])
    if request.args.get("format") == "mermaid":
        return Response(to_mermaid(graph, highlight), mimetype="text/plain")
    try:
        svg = render(graph, "svg", highlight)
    except GraphvizMissing as exc:
        return jsonify(error=str(exc), mermaid=to_mermaid(graph, highlight)), 503
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


def play(payloads: list[dict[str, Any]], settings: Settings, fresh: bool, deadline: float) -> list[dict[str, Any]]:
    """POST each body in order; before the next, wait until the worker recorded its messages.

    Real customers wait for a reply before tapping on; without the wait two workers
    could take one customer's messages in the other order. Stops at ``deadline``.
    """
    tag = uuid.uuid4().hex[:8]
    results: list[dict[str, Any]] = []
    for index, recorded in enumerate(payloads):
        if time.monotonic() > deadline:
            break
        body = replays.refresh(recorded, tag) if fresh else recorded
        result: dict[str, Any] = {"index": index, "users": replays.users_of(body)}
        try:
            answer = post_webhook(body, settings)
            result["webhook_status"] = answer.status_code
        except requests.RequestException as exc:
            result["error"] = exc.__class__.__name__
        else:
            if ids := set(replays.message_ids(body)):  # statuses alone leave nothing to wait for
                result["handled"] = _wait_recorded(ids, min(deadline, time.monotonic() + WAIT_PER_PAYLOAD))
        results.append(result)
    return results


def _wait_recorded(wamids: set[str], until: float) -> bool:
    while True:
        with session_scope() as session:
            seen = session.scalars(select(InboundMessage.wamid).where(InboundMessage.wamid.in_(wamids))).all()
        if len(set(seen)) == len(wamids) or time.monotonic() > until:
            return len(set(seen)) == len(wamids)
        time.sleep(0.05)


@bp.post("/api/replay")
def replay() -> tuple[Response, int]:
    """Play a recording: JSON ``{"example": name}`` or ``{"payloads": [...]}``, or a file upload
    (form field ``file``); ``fresh`` (default true) gives the message ids a new suffix."""
    upload = request.files.get("file")
    try:
        if upload is not None:
            data, fresh = json.load(upload.stream), request.form.get("fresh", "true") != "false"
        else:
            data = request.get_json(silent=True) or {}
            fresh = data.get("fresh", True) is not False if isinstance(data, dict) else True
        if isinstance(data, dict) and isinstance(data.get("example"), str):
            data = replays.load(data["example"])
        payloads = replays.payloads_of(data)
    except ValueError as exc:  # JSONDecodeError included
        raise BadInput(str(exc)) from None
    results = play(payloads, _settings(), fresh, time.monotonic() + REPLAY_BUDGET_SECONDS)
    users = list(dict.fromkeys(u for r in results for u in r["users"]))
    return jsonify(results=results, users=users, complete=len(results) == len(payloads)), 200


def init_app(app: Flask) -> None:
    settings: Settings = app.config["PARLEY_SETTINGS"]
    if enabled(settings):
        app.register_blueprint(bp)
