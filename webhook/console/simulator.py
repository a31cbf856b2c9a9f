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
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_from_directory
from sqlalchemy.orm import Session

import settings as settings_module
from conversation import history
from conversation.db import session_scope
from conversation.engine_settings import engine_config
from conversation.models import utcnow
from conversation.service import ConversationService, to_definition
from conversation.template_messages import with_rendered
from conversation.turn import set_language
from settings import Settings
from templates.diagrams import GraphvizMissing, build_graph, render, to_dot, to_mermaid
from templates.languages import LanguageError, canonical
from templates.message_templates import Catalogue, load_catalogue
from webhook import simulator_enabled
from webhook.console import replays
from webhook.console.webhooks import (
    DEFAULT_PHONE_NUMBER_ID,
    SIMULATED_WAMID_PREFIX,
    BadInput,
    Tap,
    inbound_webhook,
    new_wamid,
    normalize_user,
    post_webhook,
)

bp = Blueprint(
    "simulator", __name__, url_prefix="/simulator", static_folder="static/simulator", static_url_path="/static"
)

# Third-party browser code kept in the repository (each folder has its README and licence).
VENDOR = Path(__file__).parent / "static" / "vendor"
REPLAY_BUDGET_SECONDS = 25.0  # under gunicorn's 30 s worker timeout
WAIT_PER_PAYLOAD = 8.0


def business_number(session: Session, settings: Settings) -> str:
    """The ``phone_number_id`` the simulated customer writes to, which replies go out from.

    The sandbox takes any; live, Graph only knows the real one, so use the number Meta
    last delivered a (not simulated) message to.
    """
    if settings.sandbox:
        return DEFAULT_PHONE_NUMBER_ID
    return history.last_business_number(session, SIMULATED_WAMID_PREFIX) or DEFAULT_PHONE_NUMBER_ID


# --- the HTTP API ------------------------------------------------------------------------


def _settings() -> Settings:
    return current_app.config["PARLEY_SETTINGS"]


def _catalogue() -> Catalogue:
    return load_catalogue(_settings().templates_dir).catalogue


@bp.before_request
def _authenticate() -> Response | None:
    settings = _settings()
    # The page and its static files hold no data; the API does.
    if settings.simulator is not True or request.endpoint in {"simulator.page", "simulator.static", "simulator.vendor"}:
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


@bp.get("/vendor/<path:name>")
def vendor(name: str) -> Response:
    return send_from_directory(VENDOR, name)


@bp.get("/api/config")
def config() -> Response:
    settings = _settings()
    with session_scope() as session:
        names = [t.template_name for t in ConversationService(session).list_templates(active_only=True)]
        recent = history.recent_contacts(session, 30)
    dev_token = getattr(settings_module, "DEV_ADMIN_TOKEN", None)
    return jsonify(
        sandbox=settings.sandbox,
        protected=settings.simulator is True,
        # The public development token only: the page may then read the admin funnel.
        admin_token=settings.admin_token if settings.admin_token == dev_token else None,
        templates=names,
        users=recent,
        replays=replays.catalogue(),
        languages=engine_config(settings).catalogues.languages,
    )


@bp.post("/api/language")
def switch_language() -> tuple[Response, int]:
    """Speak another language to the customer from their next message (``{user, language}``)."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("send a JSON object: {user, language}")
    user = normalize_user(data.get("user"))
    try:
        language = canonical(str(data.get("language") or ""))
    except LanguageError as exc:
        raise BadInput(str(exc)) from None
    with session_scope() as session:
        known = set_language(session, user, language)
    if not known:  # nothing to remember it on yet; the first keyword sets the language anyway
        return jsonify(error=f"no customer {user} yet: send a message first"), 404
    return jsonify(user=user, language=language), 200


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
        now = utcnow()
        return jsonify(user=user, conversation=history.conversation_state(session, user, now), now=now.isoformat())


@bp.get("/api/replies")
def list_replies() -> Response:
    user = normalize_user(request.args.get("user"))
    try:
        after_id = int(request.args.get("after_id", 0))
    except ValueError:
        raise BadInput("after_id must be a whole number") from None
    with session_scope() as session:
        found = history.replies(session, user, sandbox=_settings().sandbox, after_id=after_id)
    return jsonify(messages=with_rendered(found, _catalogue()))


@bp.get("/api/history")
def thread() -> Response:
    user = normalize_user(request.args.get("user"))
    with session_scope() as session:
        found = history.thread(session, user, sandbox=_settings().sandbox)
    with_rendered(found["items"], _catalogue())
    return jsonify(found)


@bp.get("/api/diagram/<template>")
def diagram(template: str) -> Response | tuple[Response, int]:
    """``format=dot`` (the page lays it out itself), ``mermaid``, or SVG when ``dot`` is installed."""
    highlight = request.args.get("highlight") or None
    with session_scope() as session:
        service = ConversationService(session)
        row = service.get_template(template)
        if row is None:
            return jsonify(error=f"no template named {template}"), 404
        graph = build_graph(to_definition(row), [t.template_name for t in service.list_templates()])
    if request.args.get("format") == "dot":  # what the page draws, in the browser
        return Response(to_dot(graph, highlight), mimetype="text/vnd.graphviz", headers={"Cache-Control": "no-store"})
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
    shift = replays.shift_to(payloads, time.time()) if fresh else 0
    results: list[dict[str, Any]] = []
    for index, recorded in enumerate(payloads):
        if time.monotonic() > deadline:
            break
        body = replays.refresh(recorded, tag, shift) if fresh else recorded
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
            seen = history.recorded_wamids(session, wamids)
        if len(seen) == len(wamids) or time.monotonic() > until:
            return len(seen) == len(wamids)
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
    if simulator_enabled(app.config["PARLEY_SETTINGS"]):
        from webhook.console import simulator_notify  # noqa: F401 (its routes join bp)

        app.register_blueprint(bp)
