"""The notifications admin API on the real Postgres, its answers checked against its OpenAPI.

The app's sessions are the test's ``db_session`` (``SESSION_SCOPE``); ``HAND_OFF`` records
who would be handed to a sender (the pipeline itself is exercised by the e2e tests).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy.orm import Session

from conversation import window
from conversation.consent import apply_change
from conversation.models import Contact, Order, utcnow
from settings import load_settings
from tests.webhook.console.test_admin import scope_of
from webhook import create_app
from webhook.console import notifications_openapi
from webhook.console.openapi import SPEC as SPEC_OF_ADMIN

pytestmark = pytest.mark.postgres
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "15550002222"
# The fragment as the admin API's description will hold it, refs resolved within it.
SPEC = {"components": {"schemas": notifications_openapi.SCHEMAS}}
REGISTRY = Registry().with_resource("urn:spec", Resource.from_contents(SPEC, default_specification=DRAFT202012))


def conforms(body: Any, schema_name: str) -> None:
    schema = {"$ref": f"urn:spec#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(body)


@pytest.fixture
def handed() -> list[str]:
    return []


@pytest.fixture
def client(db_session: Session, handed: list[str]) -> FlaskClient:
    settings = load_settings({"PARLEY_ENV": "test", "PARLEY_ADMIN_TOKEN": TOKEN, "WHATSAPP_PHONE_NUMBER_ID": "100"})
    app: Flask = create_app(
        {
            "SETTINGS": settings,
            "ENQUEUE": lambda body: None,
            "SESSION_SCOPE": scope_of(db_session),
            "HAND_OFF": handed.append,
        }
    )
    return app.test_client()


def template(**kw: Any) -> dict[str, Any]:
    return {
        "to": PHONE,
        "idempotency_key": "k1",
        "template": {"name": "order_ready", "language": "en_US", "parameters": ["ORD-000002"]},
        **kw,
    }


def test_a_template_is_queued_once_per_key(client: FlaskClient, handed: list[str]) -> None:
    first = client.post("/admin/api/notifications", json=template(), headers=AUTH)
    assert first.status_code == 202, first.json
    conforms(first.json, "NotificationQueued")
    assert first.json["status"] == "pending" and handed == [PHONE]
    again = client.post("/admin/api/notifications", json=template(), headers=AUTH)
    assert (again.status_code, again.json) == (200, first.json)
    assert handed == [PHONE]  # nothing new to send
    shown = client.get(f"/admin/api/notifications/{first.json['id']}", headers=AUTH)
    assert shown.status_code == 200
    conforms(shown.json, "Notification")
    assert (shown.json["status"], shown.json["to"], shown.json["phone_number_id"]) == ("pending", PHONE, "100")


def test_a_text_is_refused_with_409_outside_the_window_and_queued_inside(
    client: FlaskClient, db_session: Session, handed: list[str]
) -> None:
    body = {"to": PHONE, "idempotency_key": "t1", "text": "Your table is ready"}
    refused = client.post("/admin/api/notifications", json=body, headers=AUTH)
    assert refused.status_code == 409
    conforms(refused.json, "NotificationError")
    assert "window is closed" in refused.json["error"]["message"] and refused.json["error"]["field"] == "text"
    assert handed == []
    window.record_inbound(db_session, PHONE, "100", utcnow() - timedelta(hours=1))
    assert client.post("/admin/api/notifications", json=body, headers=AUTH).status_code == 202


def test_an_opted_out_customer_is_refused_with_409(client: FlaskClient, db_session: Session) -> None:
    db_session.add(Contact(user_key=PHONE, phone_number=PHONE, pair_limit_hits=0))
    db_session.flush()
    apply_change(db_session, PHONE, "opt_out", utcnow())
    db_session.commit()  # a savepoint: the refused request's rollback keeps it
    refused = client.post("/admin/api/notifications", json=template(), headers=AUTH)
    assert refused.status_code == 409 and "opted out" in refused.json["error"]["message"]
    contact = client.get(f"/admin/api/contacts/+{PHONE}", headers=AUTH)
    conforms(contact.json, "ContactNotifications")
    assert contact.json["opted_out"] is True and contact.json["windows"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (template(template={"name": "nope", "language": "en_US", "parameters": []}), "template.name"),
        (template(template={"name": "order_ready", "language": "es", "parameters": ["x"]}), "template.language"),
        (template(template={"name": "order_ready", "language": "en_US", "parameters": []}), "template.parameters"),
        ({"to": PHONE, "text": "hi"}, "idempotency_key"),
    ],
)
def test_422_names_the_field(client: FlaskClient, body: dict[str, Any], field: str) -> None:
    refused = client.post("/admin/api/notifications", json=body, headers=AUTH)
    assert refused.status_code == 422 and refused.json["error"]["field"] == field
    conforms(refused.json, "NotificationError")


def test_not_json_unknown_ids_and_missing_tokens(client: FlaskClient) -> None:
    assert client.post("/admin/api/notifications", data="{", headers=AUTH).status_code == 400
    assert client.get("/admin/api/notifications/999999", headers=AUTH).status_code == 404
    assert client.get("/admin/api/notifications/x1", headers=AUTH).status_code == 404
    assert client.get("/admin/api/contacts/15559999999", headers=AUTH).status_code == 404
    assert client.post("/admin/api/notifications", json=template()).status_code == 401
    assert (
        client.post("/admin/api/notifications", json=template(), headers={"Authorization": "Bearer x"}).status_code
        == 403
    )


def test_order_ready_notifies_whoever_placed_the_order_once(
    client: FlaskClient, db_session: Session, handed: list[str]
) -> None:
    order = Order(user_key=PHONE, items={"product": "coffee"})
    db_session.add(order)
    db_session.flush()
    first = client.post(f"/admin/api/orders/{order.number}/ready", headers=AUTH)
    assert first.status_code == 202, first.json
    again = client.post(f"/admin/api/orders/{order.number}/ready", headers=AUTH)
    assert (again.status_code, again.json["id"]) == (200, first.json["id"])
    shown = client.get(f"/admin/api/notifications/{first.json['id']}", headers=AUTH).json
    assert shown["content"]["template"]["name"] == "order_ready" and handed == [PHONE]
    assert client.post("/admin/api/orders/ORD-999999999/ready", headers=AUTH).status_code == 404


def test_every_route_is_described() -> None:
    app = create_app(
        {"SETTINGS": load_settings({"PARLEY_ENV": "test", "PARLEY_ADMIN_TOKEN": TOKEN}), "ENQUEUE": lambda b: None}
    )
    routes = {
        rule.rule.replace("<", "{").replace(">", "}")
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("admin.")
        and rule.endpoint.split(".")[1] in {"create", "show", "order_is_ready", "contact"}
    }
    assert routes == set(notifications_openapi.PATHS)
    assert set(notifications_openapi.PATHS) <= set(SPEC_OF_ADMIN["paths"])
