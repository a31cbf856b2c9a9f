"""The admin API on the real Postgres: auth, templates, conversations, submissions, outbound, stats.

The app's sessions are the test's ``db_session`` (``SESSION_SCOPE``), so every request's
commit is a savepoint of the test's rolled-back transaction.
"""

from __future__ import annotations

import copy
import csv
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.events import UserRef
from conversation.models import OutboundMessage, Submission
from conversation.service import ConversationService
from conversation.state import EngineConfig
from conversation.turn import process_event
from settings import DEV_ADMIN_TOKEN, SettingsError, load_settings
from templates.loader import load_directory
from tests.conversation.transcript import Customer
from webhook import create_app

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
API = "/admin/api"
PHONE = "15550001234"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.postgres

PRODUCTION = {
    "PARLEY_ENV": "production",
    "DATABASE_URL": "postgresql://db.invalid/parley",
    "CELERY_BROKER_URL": "redis://broker.invalid:6379/0",
    "WHATSAPP_APP_SECRET": "s",
    "WHATSAPP_VERIFY_TOKEN": "v",
    "WHATSAPP_ACCESS_TOKEN": "a",
}


def scope_of(session: Session) -> Callable[[], AbstractContextManager[Session]]:
    @contextmanager
    def scope() -> Iterator[Session]:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    return scope


def make_app(session: Session, **env: str) -> Flask:
    settings = load_settings({"PARLEY_ENV": "test", "PARLEY_ADMIN_TOKEN": TOKEN, **env})
    return create_app({"SETTINGS": settings, "ENQUEUE": lambda body: None, "SESSION_SCOPE": scope_of(session)})


def seed(session: Session) -> None:
    """The shipped flows, one customer mid-order, one who finished, and their outbox."""
    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    ConversationService(session).upsert_templates(shipped.templates.values())
    for phone, turns in ((PHONE, ["order", "coffee"]), ("15550004321", ["order", "tea", "2", "confirm"])):
        who = Customer(UserRef(user_id=None, phone=phone, profile_name="Ann"), start=datetime.now(UTC))
        for text in turns:
            event = who.event({"send": text} if text in {"order", "2"} else {"tap": text})
            process_event(session, event, EngineConfig(), mark_as_read=False, now=event.timestamp)
    session.add(
        Submission(template_name="support", user_key="US.13491208655302741918", answers={"topic": "faq"}, created_at=T0)
    )
    row = session.query(OutboundMessage).filter_by(user_key=PHONE).order_by(OutboundMessage.id).first()
    assert row is not None
    row.wamid, row.status = "wamid.ADMINTEST", "delivered"
    session.commit()


@pytest.fixture
def client(db_session: Session) -> FlaskClient:
    seed(db_session)
    return make_app(db_session).test_client()


def flow(name: str = "survey", **step: Any) -> dict[str, Any]:
    """A small valid text flow; ``step`` overrides the initial step."""
    return {
        "template_name": name,
        "template_type": "text",
        "trigger_keywords": [name],
        "menu_structure": {
            "type": "text",
            "body": {"text": "How did we do, from 1 to 5?"},
            "steps": {
                "initial": {"validation": {"type": "integer", "min": 1, "max": 5}, "next_step": "thanks", **step},
                "thanks": {"prompt": "Thanks!", "end_conversation": True},
            },
        },
    }


# --- auth ------------------------------------------------------------------------------


def test_token_is_required_and_compared(client: FlaskClient) -> None:
    missing = client.get(f"{API}/templates")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.get_json()["error"]["status"] == 401
    assert client.get(f"{API}/templates", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get(f"{API}/templates", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get(f"{API}/templates", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 403
    assert client.get(f"{API}/templates", headers=AUTH).status_code == 200
    assert client.get(f"{API}/openapi.json").status_code == 200  # documentation is public


def test_token_defaults_outside_production_and_is_required_in_it(db_session: Session) -> None:
    assert load_settings({"PARLEY_ENV": "development"}).admin_token == DEV_ADMIN_TOKEN
    app = make_app(db_session, **PRODUCTION, PARLEY_ADMIN_TOKEN="")
    assert not any(rule.rule.startswith(API) for rule in app.url_map.iter_rules())
    with pytest.raises(SettingsError, match="PARLEY_ADMIN_TOKEN"):
        load_settings({**PRODUCTION, "PARLEY_ADMIN_TOKEN": DEV_ADMIN_TOKEN})
    assert load_settings({**PRODUCTION, "PARLEY_ADMIN_TOKEN": "a-real-secret"}).admin_token == "a-real-secret"


def test_errors_are_json(client: FlaskClient) -> None:
    assert client.get(f"{API}/nothing", headers=AUTH).get_json()["error"]["status"] == 404
    assert client.delete(f"{API}/conversations", headers=AUTH).get_json()["error"]["status"] == 405
    bad = client.get(f"{API}/conversations?limit=0", headers=AUTH)
    assert bad.status_code == 400 and "limit" in bad.get_json()["error"]["message"]
    assert client.post(f"{API}/templates", data="not json", headers=AUTH).status_code == 400


# --- templates ---------------------------------------------------------------------------


def test_template_list_and_get_round_trip(client: FlaskClient) -> None:
    listed = client.get(f"{API}/templates", headers=AUTH).get_json()["templates"]
    assert [t["template_name"] for t in listed] == [
        "account",
        "cart_order",
        "language",
        "main_menu",
        "new_order",
        "support",
    ]
    assert set(listed[4]["steps"]) == {"initial", "quantity", "confirmation", "complete"}
    got = client.get(f"{API}/templates/new_order", headers=AUTH).get_json()
    assert got["template_name"] == "new_order" and "quantity" in got["menu_structure"]["steps"]
    again = client.put(f"{API}/templates/new_order", json=got, headers=AUTH)
    assert again.status_code == 200 and again.get_json() == got
    assert client.get(f"{API}/templates/nope", headers=AUTH).status_code == 404


def test_create_update_delete(client: FlaskClient) -> None:
    created = client.post(f"{API}/templates", json=flow(), headers=AUTH)
    assert created.status_code == 201 and created.get_json()["template_name"] == "survey"
    assert client.post(f"{API}/templates", json=flow(), headers=AUTH).status_code == 409
    changed = flow(error="Please send a number from 1 to 5")
    assert client.put(f"{API}/templates/survey", json=changed, headers=AUTH).status_code == 200
    stored = client.get(f"{API}/templates/survey", headers=AUTH).get_json()
    assert stored["menu_structure"]["steps"]["initial"]["error"] == "Please send a number from 1 to 5"
    assert client.put(f"{API}/templates/ghost", json=flow("ghost"), headers=AUTH).status_code == 404
    assert client.delete(f"{API}/templates/survey", headers=AUTH).status_code == 204
    assert client.get(f"{API}/templates/survey", headers=AUTH).status_code == 404
    assert client.delete(f"{API}/templates/survey", headers=AUTH).status_code == 404


def test_invalid_templates_get_422_with_every_error_located(client: FlaskClient) -> None:
    # Graph rules, linted with the stored templates: a dangling target and a keyword clash.
    clash = flow(next_step="nowhere")
    clash["trigger_keywords"] = ["hi"]
    response = client.post(f"{API}/templates", json=clash, headers=AUTH)
    assert response.status_code == 422
    errors = response.get_json()["error"]["errors"]
    target = next(e for e in errors if e["field"] == "next_step")
    assert (target["file"], target["step"]) == ("template survey", "initial")
    assert "'nowhere' is not a step of survey nor a template" in target["message"]
    assert target["line"].startswith("template survey: step initial: ")
    assert any(e["field"] == "trigger_keywords" and "main_menu" in e["message"] for e in errors)
    # Schema rules: WhatsApp limits and unknown keys, each with its step and field.
    broken = copy.deepcopy(flow())
    steps = broken["menu_structure"]["steps"]
    steps["initial"]["message"] = {
        "type": "button",
        "body": {"text": "Pick"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "x" * 21}}]},
    }
    steps["thanks"]["promt"] = "typo"
    steps["thanks"]["next_step"] = "elsewhere"
    errors = client.post(f"{API}/templates", json=broken, headers=AUTH).get_json()["error"]["errors"]
    assert {(e["step"], e["field"]) for e in errors} == {
        ("initial", "message.action.buttons[0].reply.title"),
        ("thanks", "promt"),
        ("thanks", "next_step"),  # reported too, though the schema already failed
    }
    assert client.get(f"{API}/templates/survey", headers=AUTH).status_code == 404  # nothing stored
    mismatch = client.put(f"{API}/templates/new_order", json=flow(), headers=AUTH)
    assert mismatch.status_code == 422 and mismatch.get_json()["error"]["errors"][0]["field"] == "template_name"


def test_validate_saves_nothing(client: FlaskClient) -> None:
    ok = client.post(f"{API}/templates/validate", json=flow(), headers=AUTH).get_json()
    assert ok == {"valid": True, "errors": []}
    bad = client.post(f"{API}/templates/validate", json=flow(next_step="nowhere"), headers=AUTH).get_json()
    assert bad["valid"] is False and bad["errors"][0]["step"] == "initial"
    assert client.post(f"{API}/templates/validate", json=[1], headers=AUTH).get_json()["valid"] is False
    assert client.get(f"{API}/templates/survey", headers=AUTH).status_code == 404


def test_deleting_a_template_others_switch_to_is_409(client: FlaskClient) -> None:
    response = client.delete(f"{API}/templates/new_order", headers=AUTH)
    assert response.status_code == 409
    assert any(e["template"] == "main_menu" for e in response.get_json()["error"]["errors"])


# --- conversations, submissions, outbound, stats ------------------------------------------


def test_conversations_list_filters_get_and_end(client: FlaskClient) -> None:
    listed = client.get(f"{API}/conversations", headers=AUTH).get_json()["conversations"]
    assert [(c["user_key"], c["template"], c["step"], c["live"]) for c in listed] == [
        (PHONE, "new_order", "quantity", True)
    ]
    assert listed[0]["context"]["product"] == "coffee"
    for query in ("template=new_order", "step=quantity", f"user={PHONE}"):
        assert len(client.get(f"{API}/conversations?{query}", headers=AUTH).get_json()["conversations"]) == 1
    for query in ("template=support", "step=initial", "user=15550000000"):
        assert client.get(f"{API}/conversations?{query}", headers=AUTH).get_json()["conversations"] == []
    one = client.get(f"{API}/conversations/{PHONE}", headers=AUTH).get_json()
    assert one["step"] == "quantity" and one["menu"][0]["text"]["body"] == "How many Coffee? (Enter a number)"
    assert client.post(f"{API}/conversations/{PHONE}/end", headers=AUTH).get_json() == {
        "user_key": PHONE,
        "ended": True,
    }
    assert client.post(f"{API}/conversations/{PHONE}/end", headers=AUTH).status_code == 404
    assert client.get(f"{API}/conversations/{PHONE}", headers=AUTH).status_code == 404
    funnel = client.get(f"{API}/stats/new_order", headers=AUTH).get_json()
    assert next(s for s in funnel["steps"] if s["step"] == "quantity")["cancelled"] == 1


def test_submissions_list_and_csv(client: FlaskClient) -> None:
    subs = client.get(f"{API}/submissions", headers=AUTH).get_json()["submissions"]
    assert [(s["template"], s["user"]) for s in subs] == [("support", "US.***1918"), ("new_order", "***4321")]
    assert subs[1]["answers"]["quantity"] == 2 and subs[1]["answers"]["order_id"].startswith("ORD-")
    only = client.get(f"{API}/submissions?template=new_order&reveal_users=true", headers=AUTH).get_json()
    assert [s["user"] for s in only["submissions"]] == ["15550004321"]
    day = T0.date().isoformat()
    dated = client.get(f"{API}/submissions?since={day}&until={day}", headers=AUTH).get_json()["submissions"]
    assert [s["template"] for s in dated] == ["support"]
    assert client.get(f"{API}/submissions?since=yesterday", headers=AUTH).status_code == 400
    assert client.get(f"{API}/submissions?reveal_users=yes", headers=AUTH).status_code == 400
    assert client.get(f"{API}/conversations?user=%00", headers=AUTH).get_json() == {"conversations": []}
    assert client.post(f"{API}/templates", json=flow(error="\x00"), headers=AUTH).status_code == 400
    exported = client.get(f"{API}/submissions.csv?template=new_order", headers=AUTH)
    assert exported.mimetype == "text/csv" and "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert len(rows) == 1 and rows[0]["user"] == "***4321" and rows[0]["product"] == "tea"


def test_outbound_status_by_wamid_or_user(client: FlaskClient) -> None:
    by_wamid = client.get(f"{API}/outbound?wamid=wamid.ADMINTEST", headers=AUTH).get_json()["messages"]
    assert [(m["user_key"], m["status"]) for m in by_wamid] == [(PHONE, "delivered")]
    by_user = client.get(f"{API}/outbound?user={PHONE}", headers=AUTH).get_json()["messages"]
    assert len(by_user) == 2 and by_user[0]["id"] > by_user[1]["id"]  # newest first
    assert client.get(f"{API}/outbound?user={PHONE}&limit=1", headers=AUTH).get_json()["messages"] == by_user[:1]
    assert client.get(f"{API}/outbound?wamid=wamid.unknown", headers=AUTH).get_json() == {"messages": []}
    latest = client.get(f"{API}/outbound?limit=3", headers=AUTH).get_json()["messages"]
    assert len(latest) == 3 and {m["user_key"] for m in latest} == {"15550004321"}  # the newest of all


def test_stats_funnel(client: FlaskClient) -> None:
    funnel = client.get(f"{API}/stats/new_order", headers=AUTH).get_json()
    assert (funnel["template"], funnel["started"], funnel["completed"]) == ("new_order", 2, 1)
    assert [(s["step"], s["reached"]) for s in funnel["steps"]] == [
        ("initial", 2),
        ("quantity", 2),
        ("confirmation", 1),
        ("complete", 1),
    ]
    later = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert client.get(f"{API}/stats/new_order?since={later}", headers=AUTH).get_json()["started"] == 0
    assert client.get(f"{API}/stats/nothing", headers=AUTH).status_code == 404
