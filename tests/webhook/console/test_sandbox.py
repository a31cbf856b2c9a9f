"""The sandbox Graph API's HTTP contract: Graph's request rules and answer shapes.

The store runs on SQLite in tmp_path on purpose. What is under test is what the sandbox
accepts, refuses and answers; the table it writes to is incidental and has no
Postgres-only behaviour (no locking, no JSONB queries), so a throwaway SQLite file
keeps these tests free of servers. The process-wide engine is restored afterwards.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from conversation import db
from conversation.models import Base, InboundMessage
from conversation.template_messages import template_content
from settings import load_settings
from webhook.console import sandbox

TOKEN = "sandbox-test-token"
URL = "/sandbox/graph/v25.0/100000000000001/messages"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "+15550002222"
BSUID = "US.13491208655302741918"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[None]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'sandbox.sqlite3'}")
    Base.metadata.create_all(engine)
    with db.using_engine(engine):  # the process's engine is back after the test
        yield
    engine.dispose()


@pytest.fixture
def client(store: None) -> FlaskClient:
    app = Flask(__name__)
    # No WHATSAPP_ACCESS_TOKEN means sandbox mode; its token is swapped for a test one.
    settings = load_settings({"PARLEY_ENV": "test"})
    assert settings.sandbox
    app.config["PARLEY_SETTINGS"] = dataclasses.replace(settings, access_token=TOKEN)
    sandbox.init_app(app)
    return app.test_client()


def send(client: FlaskClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return client.post(URL, json=body, headers=AUTH if headers is None else headers)


def message(content: dict[str, Any], to: str | None = PHONE, recipient: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if to:
        body["to"] = to
    if recipient:
        body["recipient"] = recipient
    return {**body, **content}


def text(body: str = "Hello!") -> dict[str, Any]:
    return {"type": "text", "text": {"body": body, "preview_url": False}}


def buttons(*titles: str) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "Order #123"},
            "body": {"text": "Confirm your order?"},
            "footer": {"text": "Reply within 24h"},
            "action": {
                "buttons": [{"type": "reply", "reply": {"id": f"b{i}", "title": t}} for i, t in enumerate(titles)]
            },
        },
    }


def list_message(*section_sizes: int, row_title: str = "Small") -> dict[str, Any]:
    sections = [
        {
            "title": f"Section {s}",
            "rows": [{"id": f"r{s}_{i}", "title": row_title, "description": "25 cm"} for i in range(size)],
        }
        for s, size in enumerate(section_sizes)
    ]
    return {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Pick a size"},
            "action": {"button": "Sizes", "sections": sections},
        },
    }


def recorded(client: FlaskClient, **params: Any) -> list[dict[str, Any]]:
    resp = client.get("/sandbox/messages", query_string=params)
    assert resp.status_code == 200
    return resp.get_json()


@pytest.mark.parametrize(
    "body",
    [
        message(text()),
        message(text("x" * 4096)),
        message(buttons("Confirm", "Change", "x" * 20)),
        message(list_message(4, 6)),
        message(list_message(10, row_title="y" * 24)),
        message(text(), to=None, recipient=BSUID),
    ],
    ids=["text", "text-4096", "3-buttons", "list-10-rows-2-sections", "list-24-char-row", "bsuid"],
)
def test_valid_message_is_recorded_and_answered_like_graph(client: FlaskClient, body: dict[str, Any]) -> None:
    resp = send(client, body)

    assert resp.status_code == 200, resp.get_json()
    answer = resp.get_json()
    wamid = answer["messages"][0]["id"]
    assert wamid.startswith("wamid.SANDBOX")
    assert answer["messaging_product"] == "whatsapp"
    if body.get("to"):
        assert answer["contacts"] == [{"input": PHONE, "wa_id": "15550002222"}]
    else:
        assert answer["contacts"] == [{"input": BSUID, "user_id": BSUID}]
    (row,) = recorded(client)
    assert row["wamid"] == wamid
    assert row["recipient"] == (body.get("to") or body.get("recipient"))
    assert row["kind"] == "message"
    assert row["body"] == body


def test_wamids_are_unique(client: FlaskClient) -> None:
    wamids = {send(client, message(text())).get_json()["messages"][0]["id"] for _ in range(5)}
    assert len(wamids) == 5


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (message(buttons("A", "B", "C", "D")), "buttons"),
        (message(buttons("x" * 21)), "reply.title is 21 characters; the limit is 20"),
        (message(buttons("Same", "Same")), "unique"),
        (message(list_message(11)), "rows"),
        (message(list_message(5, 6)), "11 rows; the limit is 10"),
        (message(list_message(1, row_title="y" * 25)), "rows[0].title is 25 characters"),
        (message(text("x" * 4097)), "text.body is 4097 characters"),
        (
            message(
                text(""),
            ),
            "text.body is required",
        ),
        (message(text(), to=None), "exactly one of 'to'"),
        (message(text(), recipient=BSUID), "exactly one of 'to'"),
        (message(text(), to="not a phone"), "'to' must be a phone"),
        ({**message(text()), "messaging_product": "sms"}, "messaging_product"),
        (message({"type": "sticker", "sticker": {"id": "1"}}), "type must be"),
        (message({"type": "interactive", "interactive": {"type": "carousel"}}), "interactive.type"),
    ],
)
def test_invalid_message_gets_graph_error(client: FlaskClient, body: dict[str, Any], needle: str) -> None:
    resp = send(client, body)

    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == 100
    assert error["type"] == "OAuthException"
    assert error["message"].startswith("(#100) ")
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert needle in error["error_data"]["details"]
    assert error["fbtrace_id"]
    assert recorded(client) == []


def test_body_that_is_not_json_is_refused(client: FlaskClient) -> None:
    resp = client.post(URL, data="to=+1555", headers=AUTH)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == 100


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}], ids=["none", "wrong", "no-bearer"]
)
def test_wrong_token_is_refused_with_190(client: FlaskClient, headers: dict[str, str]) -> None:
    resp = send(client, message(text()), headers=headers)

    assert resp.status_code == 401
    error = resp.get_json()["error"]
    assert error["code"] == 190 and error["type"] == "OAuthException"
    assert error["message"].startswith("(#190) ")
    assert recorded(client) == []


def test_mark_read_is_recorded_for_the_reader(client: FlaskClient) -> None:
    with db.session_scope() as s:
        s.add(InboundMessage(wamid="wamid.IN1", user_key="15550002222", message_type="text", payload={}))

    resp = send(client, {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1"})

    assert resp.status_code == 200
    assert resp.get_json() == {"success": True}
    (row,) = recorded(client, recipient=PHONE)
    assert row["kind"] == "mark_read" and row["wamid"].startswith("wamid.SANDBOX")
    bad = send(client, {"messaging_product": "whatsapp", "status": "unread", "message_id": "wamid.IN1"})
    assert bad.status_code == 400


def test_messages_filter_by_recipient_and_after_id(client: FlaskClient) -> None:
    send(client, message(text("one")))
    send(client, message(text("two"), to=None, recipient=BSUID))
    send(client, message(text("three"), to="+15550003333"))

    mine = recorded(client, recipient=PHONE)
    assert [m["body"]["text"]["body"] for m in mine] == ["one"]
    assert recorded(client, recipient="15550002222") == mine  # with or without the +
    assert [m["body"]["text"]["body"] for m in recorded(client, recipient=BSUID)] == ["two"]
    everything = recorded(client)
    assert [m["id"] for m in everything] == sorted(m["id"] for m in everything)
    assert set(everything[0]) == {"id", "wamid", "phone_number_id", "recipient", "kind", "body", "created_at"}
    later = recorded(client, after_id=everything[0]["id"])
    assert [m["body"]["text"]["body"] for m in later] == ["two", "three"]
    assert client.get("/sandbox/messages?after_id=x").status_code == 400


def test_page_lists_messages_escaped_and_refreshes(client: FlaskClient) -> None:
    send(client, message(text("<script>alert(1)</script> & hi")))
    send(client, message(buttons("Yes <b>", "No")))

    resp = client.get("/sandbox")
    assert client.get("/sandbox/").data == resp.data  # with or without the slash

    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'http-equiv="refresh"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; hi" in html
    assert "<script>" not in html and "Yes <b>" not in html
    assert "Yes &lt;b&gt;" in html and PHONE in html


@pytest.mark.parametrize(
    "changes",
    [{"env": "production"}, {"sandbox": False}],
    ids=["production", "meta-token-configured"],
)
def test_not_registered_outside_sandbox_mode(store: None, changes: dict[str, Any]) -> None:
    app = Flask(__name__)
    settings = load_settings({"PARLEY_ENV": "test"})
    app.config["PARLEY_SETTINGS"] = dataclasses.replace(settings, access_token=TOKEN, **changes)
    sandbox.init_app(app)
    assert "sandbox" not in app.blueprints
    assert app.test_client().post(URL, json=message(text()), headers=AUTH).status_code == 404


def test_graph_client_talks_to_the_sandbox_over_http(client: FlaskClient) -> None:
    """What the worker sends passes the sandbox, and the sandbox's refusals classify."""
    from werkzeug.serving import make_server

    from worker.graph_api import GraphClient, GraphError

    server = make_server("127.0.0.1", 0, client.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.port}/sandbox/graph/v25.0"
    try:
        with GraphClient(base, TOKEN, 1.0, 5.0) as graph:
            wamid = graph.send("100000000000001", None, BSUID, buttons("Yes", "No")).wamid
            graph.mark_read("100000000000001", "wamid.UNKNOWN")
            with pytest.raises(GraphError) as too_many:
                graph.send("100000000000001", PHONE, None, buttons("A", "B", "C", "D"))
        with GraphClient(base, "wrong-token", 1.0, 5.0) as graph, pytest.raises(GraphError) as denied:
            graph.send("100000000000001", PHONE, None, text())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert [m["wamid"] for m in recorded(client, recipient=BSUID)] == [wamid]
    assert (too_many.value.disposition, too_many.value.code) == ("permanent", 100)
    assert (denied.value.disposition, denied.value.code) == ("auth", 190)


# --- template messages: accepted when the catalogue declares them, shown as WhatsApp does ---


def template(name: str = "order_ready", language: str = "en_US", values: tuple[str, ...] = ("ORD-000002",)) -> Any:
    return message(template_content(name, language, list(values)))


def test_a_declared_template_is_accepted_and_read_back_as_whatsapp_shows_it(client: FlaskClient) -> None:
    answer = send(client, template())
    assert answer.status_code == 200, answer.json
    [row] = client.get("/sandbox/messages").json
    assert row["body"]["type"] == "template"
    assert row["rendered"] == {
        "name": "order_ready",
        "language": "en_US",
        "header": "Your order is ready",
        "body": "Good news: your order ORD-000002 is ready. Come and pick it up whenever you like.",
        "footer": "Reply STOP to stop these notices",
        "buttons": [],
    }
    page = client.get("/sandbox").get_data(as_text=True)
    assert "Good news: your order ORD-000002 is ready." in page and "(template order_ready, en_US)" in page


def test_unknown_templates_and_wrong_parameter_counts_get_metas_codes(client: FlaskClient) -> None:
    unknown = send(client, template(name="no_such_template"))
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == 132001
    wrong_language = send(client, template(language="de"))  # order_ready has en_US and pt_BR
    assert wrong_language.json["error"]["code"] == 132001
    wrong_count = send(client, template(values=("ORD-1", "extra")))
    assert wrong_count.status_code == 400 and wrong_count.json["error"]["code"] == 132000
    assert client.get("/sandbox/messages").json == []


def test_a_malformed_template_send_is_an_invalid_parameter(client: FlaskClient) -> None:
    for broken in ({"name": "order_ready"}, {"name": "", "language": {"code": "en_US"}}):
        answer = send(client, message({"type": "template", "template": broken}))
        assert answer.status_code == 400 and answer.json["error"]["code"] == 100
        assert "template." in answer.json["error"]["error_data"]["details"]
