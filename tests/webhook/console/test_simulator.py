"""The simulator's JSON API (``webhook/console/simulator.py``) on real Postgres, without the stack.

Its own migrated database (the API reads what workers commit, so the rolled-back
``db_session`` cannot serve), and a real loopback HTTP server standing in for the
receiver's ``/webhook``: what is under test is the signed POST the simulator makes and
what it reads back. The whole pipeline behind ``/webhook`` is driven in
``test_simulator_browser.py``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

import settings as settings_module
from conversation import db
from conversation.engine_settings import engine_config
from conversation.events import UserRef
from conversation.models import Contact, ConversationState, InboundMessage, OutboundMessage, SandboxMessage, utcnow
from conversation.payload import parse_payload
from conversation.turn import process_event
from settings import ROOT, Settings, SettingsError, load_settings
from templates import diagrams
from tests.conftest import engine_with_shipped_flows
from tests.conversation.transcript import Customer
from tests.support.services import service_missing
from webhook import simulator_enabled
from webhook.console import simulator
from webhook.signature import verify

SECRET = "simulator-test-secret"
TOKEN = "simulator-admin-token"


class Receiver:
    """A stand-in ``/webhook`` on loopback: records each POST, answers like the receiver."""

    def __init__(self) -> None:
        self.posts: list[tuple[bytes, str]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((body, self.headers.get("X-Hub-Signature-256", "")))
                answer = json.dumps({"status": "queued"}).encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _ in self.posts]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with engine_with_shipped_flows() as engine:
        yield engine


@pytest.fixture
def store(engine: Engine) -> Iterator[None]:
    with db.using_engine(engine):  # the process-wide engine is back after the test
        yield


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def make_settings(receiver_url: str = "http://127.0.0.1:9", **env: str) -> Settings:
    base = {"PARLEY_ENV": "test", "WHATSAPP_APP_SECRET": SECRET, "PARLEY_PUBLIC_URL": receiver_url}
    return load_settings({**base, **env})


def app_for(settings: Settings) -> Flask:
    app = Flask(__name__)
    app.config["PARLEY_SETTINGS"] = settings
    simulator.init_app(app)
    return app


@pytest.fixture
def client(store: None, receiver: Receiver) -> FlaskClient:
    settings = make_settings(receiver.url)
    assert settings.sandbox and simulator_enabled(settings)
    return app_for(settings).test_client()


def user() -> str:
    return f"1555{uuid.uuid4().int % 10**7:07d}"


def sandbox_row(recipient: str, content: dict[str, Any], kind: str = "message") -> SandboxMessage:
    return SandboxMessage(
        wamid="wamid.T" + uuid.uuid4().hex, phone_number_id="1", recipient=recipient, kind=kind, body=content
    )


def add(*rows: Any) -> None:
    with db.session_scope() as session:
        session.add_all(rows)


TEXT = {"messaging_product": "whatsapp", "to": "+1", "type": "text", "text": {"body": "Hello"}}


# --- when it is there ----------------------------------------------------------------


PRODUCTION = {
    "PARLEY_ENV": "production",
    "DATABASE_URL": "postgresql://db/parley",
    "CELERY_BROKER_URL": "redis://broker:6379/0",
    "WHATSAPP_APP_SECRET": "s",
    "WHATSAPP_VERIFY_TOKEN": "v",
    "WHATSAPP_ACCESS_TOKEN": "a",
    "PARLEY_ADMIN_TOKEN": TOKEN,
}


def test_on_with_the_sandbox_off_in_production_unless_asked_for() -> None:
    assert app_for(make_settings()).test_client().get("/simulator/").status_code == 200
    assert app_for(make_settings(PARLEY_SIMULATOR="false")).test_client().get("/simulator/").status_code == 404
    assert app_for(load_settings(PRODUCTION)).test_client().get("/simulator/").status_code == 404
    # With a real Meta token outside production it is off too: replies would go to Meta.
    assert not simulator_enabled(make_settings(WHATSAPP_ACCESS_TOKEN="real"))


def test_asked_for_in_production_every_api_call_needs_the_admin_token(store: None) -> None:
    client = app_for(load_settings({**PRODUCTION, "PARLEY_SIMULATOR": "true"})).test_client()
    page = client.get("/simulator/")
    assert page.status_code == 200 and b"parley simulator" in page.data  # no data on the page itself
    assert client.get("/simulator/static/app.js").status_code == 200
    assert client.get("/simulator/api/config").status_code == 401
    assert (
        client.get("/simulator/api/state?user=15550100001", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    answer = client.get("/simulator/api/config", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.json["protected"] is True and answer.json["sandbox"] is False
    assert answer.json["admin_token"] is None  # a real token is never handed to the page


def test_asked_for_without_an_admin_token_refuses_to_start() -> None:
    without = {k: v for k, v in PRODUCTION.items() if k != "PARLEY_ADMIN_TOKEN"}
    with pytest.raises(SettingsError, match="PARLEY_SIMULATOR=true needs PARLEY_ADMIN_TOKEN"):
        load_settings({**without, "PARLEY_SIMULATOR": "true"})


def test_config_lists_templates_examples_and_the_public_dev_token(client: FlaskClient) -> None:
    body = client.get("/simulator/api/config").json
    assert body["templates"] == ["account", "cart_order", "language", "main_menu", "new_order", "support"]
    assert {r["name"] for r in body["replays"]} == {"coffee_order", "statuses_out_of_order", "batch_two_users"}
    assert body["admin_token"] == settings_module.DEV_ADMIN_TOKEN
    assert body["protected"] is False and body["sandbox"] is True


# --- sending: a signed, Meta-shaped webhook over HTTP ---------------------------------------


def test_text_is_posted_signed_in_meta_shape(client: FlaskClient, receiver: Receiver) -> None:
    phone = user()
    answer = client.post("/simulator/api/send", json={"user": f"+{phone}", "text": "hi", "name": "Mia"})
    assert answer.status_code == 200, answer.json
    assert answer.json["webhook_status"] == 200
    ((raw, signature),) = receiver.posts
    assert verify(raw, signature, SECRET)
    parsed = parse_payload(raw)
    assert not parsed.skipped
    (event,) = parsed.messages
    assert (event.kind, event.text, event.wamid) == ("text", "hi", answer.json["wamid"])
    assert (event.user.phone, event.user.user_id, event.user.profile_name) == (phone, None, "Mia")


def test_a_list_tap_from_a_username_user_carries_no_phone(client: FlaskClient, receiver: Receiver) -> None:
    tap = {"id": "coffee", "title": "Coffee", "kind": "list", "description": "Fresh", "context": "wamid.BOT1"}
    answer = client.post("/simulator/api/send", json={"user": "US.13491208655302741918", "tap": tap})
    assert answer.status_code == 200
    (event,) = parse_payload(receiver.posts[0][0]).messages
    assert (event.kind, event.choice_id, event.text, event.context_wamid) == (
        "choice",
        "coffee",
        "Coffee",
        "wamid.BOT1",
    )
    assert (event.user.user_id, event.user.phone) == ("US.13491208655302741918", None)
    item = receiver.bodies()[0]["entry"][0]["changes"][0]["value"]["messages"][0]
    assert item["interactive"]["list_reply"] == {"id": "coffee", "title": "Coffee", "description": "Fresh"}
    assert "from" not in item


@pytest.mark.parametrize(
    "body",
    [
        {"user": "abc", "text": "hi"},
        {"user": "15550100001", "text": "  "},
        {"user": "15550100001", "tap": {"id": 1}},
        [],
    ],
)
def test_bad_input_is_a_400(client: FlaskClient, receiver: Receiver, body: Any) -> None:
    answer = client.post("/simulator/api/send", json=body)
    assert answer.status_code == 400 and answer.json["error"]
    assert receiver.posts == []


def test_a_receiver_that_does_not_answer_is_reported(store: None) -> None:
    client = app_for(make_settings("http://127.0.0.1:9")).test_client()  # discard port: refused
    answer = client.post("/simulator/api/send", json={"user": "15550100001", "text": "hi"})
    assert answer.status_code == 502
    assert "did not answer" in answer.json["error"]


# --- reading back: state, replies, history ---------------------------------------------------


def test_state_is_the_conversation_row(client: FlaskClient) -> None:
    phone = user()
    now = utcnow()
    add(
        ConversationState(
            user_key=phone,
            phone_number=phone,
            conversation_flow="new_order",
            current_step="quantity",
            context={"product": "coffee"},
            last_interaction=now,
            expires_at=now + timedelta(hours=24),
        )
    )
    body = client.get(f"/simulator/api/state?user={phone}").json
    conv = body["conversation"]
    assert (conv["template"], conv["step"], conv["context"], conv["live"]) == (
        "new_order",
        "quantity",
        {"product": "coffee"},
        True,
    )
    assert conv["expires_at"].startswith(str((now + timedelta(hours=24)).date()))
    assert client.get(f"/simulator/api/state?user={user()}").json["conversation"] is None


def test_replies_are_the_sandbox_rows_of_that_customer_after_an_id(client: FlaskClient) -> None:
    phone, other = user(), user()
    add(
        sandbox_row(f"+{phone}", {**TEXT, "text": {"body": "one"}}),
        sandbox_row(f"+{other}", {**TEXT, "text": {"body": "not yours"}}),
        sandbox_row(
            f"+{phone}", {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1"}, "mark_read"
        ),
        sandbox_row(f"+{phone}", {**TEXT, "text": {"body": "two"}}),
    )
    rows = client.get(f"/simulator/api/replies?user={phone}").json["messages"]
    assert [r.get("content", {}).get("text", {}).get("body") or r["read"] for r in rows] == ["one", "wamid.IN1", "two"]
    assert rows[0]["content"] == {"type": "text", "text": {"body": "one"}}  # no "to": just what shows
    after = client.get(f"/simulator/api/replies?user={phone}&after_id={rows[1]['id']}").json["messages"]
    assert [r["content"]["text"]["body"] for r in after] == ["two"]
    assert client.get(f"/simulator/api/replies?user={phone}&after_id=x").status_code == 400


def test_history_interleaves_the_inbound_log_and_the_replies(client: FlaskClient) -> None:
    phone = user()
    now = utcnow()
    tap = {
        "id": "w2",
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": "new_order", "title": "New Order"}},
    }
    add(
        InboundMessage(
            wamid="wamid.H1" + phone,
            user_key=phone,
            message_type="text",
            received_at=now - timedelta(seconds=9),
            payload={"type": "text", "text": {"body": "hi"}},
        )
    )
    reply = sandbox_row(f"+{phone}", {**TEXT, "text": {"body": "menu"}})
    reply.created_at = now - timedelta(seconds=8)
    add(
        reply,
        InboundMessage(
            wamid="wamid.H2" + phone, user_key=phone, message_type="interactive", received_at=now, payload=tap
        ),
    )
    body = client.get(f"/simulator/api/history?user={phone}").json
    assert [(i["dir"], i.get("text") or i["content"]["text"]["body"]) for i in body["items"]] == [
        ("in", "hi"),
        ("out", "menu"),
        ("in", "New Order"),
    ]
    assert body["last_id"] == body["items"][1]["id"]


# --- diagram -----------------------------------------------------------------------------------


def test_diagram_is_svg_with_the_step_highlighted(client: FlaskClient) -> None:
    if diagrams.shutil.which("dot") is None:
        service_missing("Graphviz dot (apt-get install graphviz)", FileNotFoundError("dot"))
    answer = client.get("/simulator/api/diagram/new_order?highlight=confirmation")
    assert answer.status_code == 200 and answer.mimetype == "image/svg+xml"
    assert b'<g id="step_confirmation" class="node step current">' in answer.data
    mermaid = client.get("/simulator/api/diagram/new_order?format=mermaid&highlight=quantity")
    assert b"class step_quantity current" in mermaid.data
    assert client.get("/simulator/api/diagram/nope").status_code == 404


def test_without_dot_the_page_gets_dot_source_and_its_renderer(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diagrams.shutil, "which", lambda _name: None)
    answer = client.get("/simulator/api/diagram/support?highlight=email")  # not rendered (cached) elsewhere
    assert answer.status_code == 503
    assert "--format html" in answer.json["error"]
    assert answer.json["mermaid"].startswith("flowchart TD")
    dot = client.get("/simulator/api/diagram/new_order?format=dot&highlight=quantity")
    assert dot.status_code == 200 and dot.mimetype == "text/vnd.graphviz"
    assert '"step_quantity" [id="step_quantity" class="step current"' in dot.text
    assert dot.text.startswith('digraph "new_order" {')
    page = client.get("/simulator/").text
    assert '<script src="vendor/viz/viz-global.js" defer></script>' in page
    renderer = client.get("/simulator/vendor/viz/viz-global.js")
    assert renderer.status_code == 200 and renderer.mimetype == "text/javascript"
    assert b"Viz.js 3.31.0" in renderer.data[:100]
    renderer.close()
    assert client.get("/simulator/vendor/../simulator.py").status_code == 404


def test_the_page_draws_text_in_the_font_graphviz_measured() -> None:
    css = (ROOT / "webhook" / "console" / "static" / "simulator" / "app.css").read_text()
    assert f".diagram svg text {{ font-family: {diagrams.PAGE_FONTS}; }}" in css
    assert diagrams.PAGE_FONTS.startswith(f'"{diagrams.FONT}",')


# --- replay ----------------------------------------------------------------------------------


@pytest.fixture
def quick_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing behind the stand-in receiver records messages: do not wait for it long.
    monkeypatch.setattr(simulator, "WAIT_PER_PAYLOAD", 0.1)


def test_replay_posts_every_body_in_order_duplicates_included(
    client: FlaskClient, receiver: Receiver, quick_replay: None
) -> None:
    answer = client.post("/simulator/api/replay", json={"example": "coffee_order"})
    assert answer.status_code == 200
    body = answer.json
    assert body["complete"] is True and body["users"] == ["15550100101"]
    assert [r["webhook_status"] for r in body["results"]] == [200] * 7
    assert [r["handled"] for r in body["results"] if "handled" in r] == [False] * 6  # no worker here
    recorded = json.loads((ROOT / "webhook/console/replays/coffee_order.json").read_text())["payloads"]
    sent = receiver.bodies()
    assert all(verify(raw, sig, SECRET) for raw, sig in receiver.posts)
    assert len(sent) == len(recorded)
    ids = [[m.wamid for m in parse_payload(json.dumps(b)).messages] for b in sent]
    assert ids[1] == ids[2]  # the duplicate delivery stays a duplicate ...
    assert ids[1][0].startswith(
        recorded[1]["entry"][0]["changes"][0]["value"]["messages"][0]["id"] + "."
    )  # ... with a fresh id
    assert sent[4] == recorded[4]  # statuses untouched, out of order as recorded
    # ... and sent now, as a customer inside the 24-hour window, one after the other as recorded
    stamps = [
        int(m["timestamp"])
        for b in sent
        for e in b["entry"]
        for c in e["changes"]
        for m in c["value"].get("messages", [])
    ]
    assert abs(max(stamps) - time.time()) < 60 and stamps == sorted(stamps)


def test_replay_of_an_upload_as_recorded(client: FlaskClient, receiver: Receiver, quick_replay: None) -> None:
    recorded = json.loads((ROOT / "webhook/console/replays/batch_two_users.json").read_text())["payloads"]
    upload = {"file": (io.BytesIO(json.dumps(recorded).encode()), "rec.json"), "fresh": "false"}
    answer = client.post("/simulator/api/replay", data=upload, content_type="multipart/form-data")
    assert answer.status_code == 200
    assert answer.json["users"] == ["15550100103", "US.10000000000000000042"]
    assert receiver.bodies() == recorded


@pytest.mark.parametrize("body", [{"example": "../settings"}, {"payloads": []}, {"payloads": [{"object": "x"}]}, {}])
def test_replay_refuses_what_is_not_a_recording(client: FlaskClient, receiver: Receiver, body: Any) -> None:
    answer = client.post("/simulator/api/replay", json=body)
    assert answer.status_code == 400, answer.json
    assert receiver.posts == []


def test_replay_stops_at_its_time_budget(
    client: FlaskClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulator, "REPLAY_BUDGET_SECONDS", 0.0)
    body = client.post("/simulator/api/replay", json={"example": "coffee_order"}).json
    assert body["complete"] is False and len(body["results"]) < 7


def test_settings_copy_is_used_not_the_environment(store: None, receiver: Receiver) -> None:
    # The secret the simulator signs with comes from the app's settings object.
    settings = dataclasses.replace(make_settings(receiver.url), app_secret="another-secret")
    app_for(settings).test_client().post("/simulator/api/send", json={"user": "15550100001", "text": "hi"})
    raw, signature = receiver.posts[0]
    assert verify(raw, signature, "another-secret") and not verify(raw, signature, SECRET)


# --- live mode (a real Meta token): the outbox stands in for the sandbox -----------------------


def live_client(receiver_url: str) -> FlaskClient:
    settings = make_settings(
        receiver_url, WHATSAPP_ACCESS_TOKEN="real-token", PARLEY_SIMULATOR="true", PARLEY_ADMIN_TOKEN=TOKEN
    )
    client = app_for(settings).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client


def test_live_messages_go_to_the_business_number_meta_last_wrote_to(store: None, receiver: Receiver) -> None:
    number = f"2{uuid.uuid4().int % 10**14:014d}"
    add(
        InboundMessage(
            wamid=f"wamid.REAL{number}", user_key=user(), phone_number_id=number, message_type="text", payload={}
        ),
        InboundMessage(
            wamid=f"wamid.SIM{number}", user_key=user(), phone_number_id="999", message_type="text", payload={}
        ),
    )
    assert live_client(receiver.url).post("/simulator/api/send", json={"user": user(), "text": "hi"}).status_code == 200
    value = receiver.bodies()[0]["entry"][0]["changes"][0]["value"]
    assert value["metadata"]["phone_number_id"] == number  # not the simulator's own "999"


def test_live_replies_are_the_outbox_rows_with_their_status(store: None, receiver: Receiver) -> None:
    phone = user()
    base = {"user_key": phone, "phone_number_id": "1", "to_phone": phone}
    add(
        OutboundMessage(**base, kind="mark_read", content={"message_id": "wamid.IN9"}, status="accepted"),
        OutboundMessage(
            **base,
            content={"type": "text", "text": {"body": "hello"}},
            status="failed",
            last_error="(#131030) not allowed",
        ),
    )
    rows = live_client(receiver.url).get(f"/simulator/api/replies?user={phone}").json["messages"]
    assert [r.get("read") for r in rows] == ["wamid.IN9", None]
    assert (rows[1]["content"]["text"]["body"], rows[1]["status"], rows[1]["error"]) == (
        "hello",
        "failed",
        "(#131030) not allowed",
    )


def test_switching_the_language_speaks_it_from_the_next_message(client: FlaskClient) -> None:
    phone = user()
    now = utcnow()
    add(
        ConversationState(
            user_key=phone,
            phone_number=phone,
            conversation_flow="new_order",
            current_step="quantity",
            context={"product": "coffee", "product_title": "Coffee"},
            last_interaction=now,
            expires_at=now + timedelta(hours=24),
            language="en",
        ),
        Contact(user_key=phone, phone_number=phone, language="en", pair_limit_hits=0),
    )
    assert client.get("/simulator/api/config").json["languages"] == ["en", "pt_BR"]
    unknown = client.post("/simulator/api/language", json={"user": user(), "language": "pt_BR"})
    assert unknown.status_code == 404 and "send a message first" in unknown.json["error"]
    switched = client.post("/simulator/api/language", json={"user": phone, "language": "pt-br"})
    assert (switched.status_code, switched.json) == (200, {"user": phone, "language": "pt_BR"})
    assert client.get(f"/simulator/api/state?user={phone}").json["conversation"]["language"] == "pt_BR"
    assert client.post("/simulator/api/language", json={"user": phone, "language": "xx"}).status_code == 400

    # The customer's next message, through the real turn: answered in Portuguese.
    event = Customer(UserRef(user_id=None, phone=phone, profile_name="Ann")).event({"send": "muitos"})
    with db.session_scope() as session:
        result = process_event(session, event, engine_config(make_settings()), mark_as_read=False)
        ids = OutboundMessage.id.in_(result.outbox_ids)
        replies = [c["text"]["body"] for c in session.scalars(select(OutboundMessage.content).where(ids))]
        kept = session.scalar(select(Contact.language).where(Contact.user_key == phone))
    assert replies == ["Envie um número inteiro de 1 a 50, por exemplo: 2"] and kept == "pt_BR"
