"""The agents' API and inbox page on the real Postgres, answers checked against their OpenAPI entries.

The app's sessions are the test's ``db_session`` (every commit a savepoint of a rolled-back
transaction). ``HAND_OFF`` records the customers handed to a sender instead of publishing
to a broker: what is tested here is that a reply is handed on after its commit, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from conversation import handoff
from conversation.events import UserRef
from conversation.models import InboundMessage, OutboundMessage, utcnow
from conversation.state import EngineConfig
from conversation.turn import process_event
from settings import load_settings
from tests.conversation.transcript import Customer
from tests.webhook.console.test_admin import PRODUCTION, TOKEN, scope_of
from webhook import create_app
from webhook.console.handoffs_openapi import PATHS, SCHEMAS
from webhook.console.openapi import SPEC as ADMIN_SPEC

pytestmark = pytest.mark.postgres
AUTH = {"Authorization": f"Bearer {TOKEN}"}
API = "/admin/api/handoffs"
ANN, BEA = "15550001111", "US.13491208655302741918"
# The admin description with these entries merged in, as it will be served.
SPEC = {
    **ADMIN_SPEC,
    "paths": {**ADMIN_SPEC["paths"], **PATHS},
    "components": {**ADMIN_SPEC["components"], "schemas": {**ADMIN_SPEC["components"]["schemas"], **SCHEMAS}},
}
SPEC_URI = "urn:parley:admin-openapi"
REGISTRY = Registry().with_resource(SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012))


def check(response: TestResponse, method: str, path: str) -> Any:
    """The answer is documented for ``method path`` and matches its schema; returns its JSON."""
    documented = SPEC["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {path} answered {status}, not described"
    assert response.mimetype == "application/json"
    where = "/".join(
        p.replace("~", "~0").replace("/", "~1")
        for p in ("paths", path, method, "responses", status, "content", "application/json", "schema")
    )
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/{where}"}, registry=REGISTRY, format_checker=jsonschema.FormatChecker()
    )
    body = response.get_json()
    validator.validate(body)
    return body


def write(session: Session, user: UserRef, text: str, minutes_ago: float) -> None:
    """A real turn of the customer, at ``minutes_ago``, through the inbound path."""
    who = Customer(user, start=utcnow() - timedelta(minutes=minutes_ago))
    event = who.event({"send": text})
    event = type(event)(**{**event.__dict__, "wamid": f"wamid.{user.key}.{minutes_ago}",
                           "raw": {"type": "text", "text": {"body": text}}})  # fmt: skip
    process_event(session, event, EngineConfig(), mark_as_read=False, now=event.timestamp)


@pytest.fixture
def app(db_session: Session) -> Flask:
    from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
    from conversation.service import ConversationService
    from templates.loader import load_directory
    from tests.webhook.console.test_admin import ROOT

    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    ConversationService(db_session).upsert_templates(shipped.templates.values())
    ann, bea = UserRef(None, ANN, "Ann"), UserRef(BEA, None, "Bea")
    write(db_session, ann, "help", minutes_ago=30)
    write(db_session, bea, "hi", minutes_ago=25 * 60)  # her window has closed
    now = utcnow()
    handoff.request(db_session, handoff.Customer(ANN, ANN, None, "PNID"), now - timedelta(minutes=29), text="agent")
    handoff.request(db_session, handoff.Customer(BEA, None, BEA, "PNID"), now - timedelta(minutes=28), text="hi")
    db_session.commit()
    settings = load_settings({"PARLEY_ENV": "test", "PARLEY_ADMIN_TOKEN": TOKEN})
    handed: list[str] = []
    flask_app = create_app(
        {
            "SETTINGS": settings,
            "ENQUEUE": lambda body: None,
            "SESSION_SCOPE": scope_of(db_session),
            "HAND_OFF": handed.append,
        }
    )
    flask_app.config["HANDED"] = handed
    return flask_app


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    yield app.test_client()


def test_every_route_needs_the_admin_token(client: FlaskClient) -> None:
    for method, url in (("get", API), ("get", f"{API}/{ANN}/messages"), ("post", f"{API}/{ANN}/release")):
        assert getattr(client, method)(url).status_code == 401
        assert getattr(client, method)(url, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get(API, headers=AUTH).status_code == 200


def test_the_list_is_oldest_first_with_what_each_customer_last_wrote(client: FlaskClient) -> None:
    body = check(client.get(API, headers=AUTH), "get", "/admin/api/handoffs")
    assert [(row["user"], row["last_message"], row["waiting"]) for row in body] == [(ANN, "agent", 1), (BEA, "hi", 1)]
    assert body[0]["since"] < body[1]["since"]


def test_the_transcript_has_the_bots_messages_and_is_404_for_a_stranger(client: FlaskClient) -> None:
    path = "/admin/api/handoffs/{user}/messages"
    body = check(client.get(f"{API}/{ANN}/messages", headers=AUTH), "get", path)
    assert [line["direction"] for line in body] == ["in", "out"]
    assert body[0]["text"] == "help" and body[1]["text"].startswith("How can we help?")
    check(client.get(f"{API}/15550000000/messages", headers=AUTH), "get", path)
    assert client.get(f"{API}/15550000000/messages", headers=AUTH).status_code == 404


def test_a_persons_reply_is_queued_then_handed_to_a_sender(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    path = "/admin/api/handoffs/{user}/messages"
    response = client.post(f"{API}/{ANN}/messages", json={"text": "Hi Ann, Carla here."}, headers=AUTH)
    assert response.status_code == 202
    body = check(response, "post", path)
    row = db_session.get(OutboundMessage, body["id"])
    assert row is not None and row.content["text"]["body"] == "Hi Ann, Carla here." and row.to_phone == ANN
    assert app.config["HANDED"] == [ANN]
    lines = check(client.get(f"{API}/{ANN}/messages", headers=AUTH), "get", path)
    assert lines[-1] == {"direction": "out", "text": "Hi Ann, Carla here.", "at": lines[-1]["at"]}
    listed = check(client.get(API, headers=AUTH), "get", "/admin/api/handoffs")
    assert listed[0]["waiting"] == 0  # answered


def test_no_reply_outside_the_window_or_to_someone_not_handed_off(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    path = "/admin/api/handoffs/{user}/messages"
    closed = client.post(f"{API}/{BEA}/messages", json={"text": "Sorry for the wait"}, headers=AUTH)
    assert closed.status_code == 409 and "24-hour window" in check(closed, "post", path)["error"]["message"]
    client.post(f"{API}/{ANN}/release", headers=AUTH)
    gone = client.post(f"{API}/{ANN}/messages", json={"text": "Still there?"}, headers=AUTH)
    assert gone.status_code == 409 and "not handed off" in check(gone, "post", path)["error"]["message"]
    for bad, status in (({"text": "  "}, 422), ({"text": 5}, 422), ({}, 422), ([], 400)):
        response = client.post(f"{API}/{ANN}/messages", json=bad, headers=AUTH)
        assert response.status_code == status
        check(response, "post", path)
    assert app.config["HANDED"] == []
    texts = [r.content.get("text", {}).get("body") for r in db_session.scalars(select(OutboundMessage))]
    assert "Sorry for the wait" not in texts and "Still there?" not in texts


def test_release_takes_the_customer_off_the_list_once(client: FlaskClient, db_session: Session) -> None:
    path = "/admin/api/handoffs/{user}/release"
    body = check(client.post(f"{API}/{ANN}/release", headers=AUTH), "post", path)
    assert body == {"user": ANN, "released": True}
    assert client.post(f"{API}/{ANN}/release", headers=AUTH).status_code == 404
    check(client.post(f"{API}/{ANN}/release", headers=AUTH), "post", path)
    assert [row["user"] for row in client.get(API, headers=AUTH).get_json()] == [BEA]
    assert db_session.scalar(select(InboundMessage.user_key).where(InboundMessage.user_key == ANN)) == ANN


def test_every_route_is_described(app: Flask) -> None:
    registered = {
        (method.lower(), rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("handoffs.")
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    described = {(method, path) for path, item in PATHS.items() for method in item if method != "parameters"}
    assert registered == described
    jsonschema.Draft202012Validator.check_schema({"$defs": SCHEMAS})


def test_the_inbox_page_and_its_scripts_are_served(client: FlaskClient) -> None:
    page = client.get("/console/inbox")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/console/inbox/static/inbox.js" in html and "/console/inbox/static/inbox.css" in html
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for name in ("inbox.js", "inbox.css"):
        assert client.get(f"/console/inbox/static/{name}").status_code == 200


def test_in_production_without_an_admin_token_neither_the_api_nor_the_page_exists(db_session: Session) -> None:
    app = create_app({"SETTINGS": load_settings(PRODUCTION), "ENQUEUE": lambda body: None})
    client = app.test_client()
    assert client.get("/console/inbox").status_code == 404
    assert client.get(API, headers=AUTH).status_code == 404


def test_a_reply_postgres_could_not_store_is_422_not_500(client: FlaskClient) -> None:
    path = "/admin/api/handoffs/{user}/messages"
    for text in ("nul \x00 inside", "lone \ud800 surrogate"):
        response = client.post(
            f"{API}/{ANN}/messages", data=json.dumps({"text": text}), content_type="application/json", headers=AUTH
        )
        assert response.status_code == 422
        check(response, "post", path)
