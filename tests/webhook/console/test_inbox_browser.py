"""The agent inbox in Debian's chromium against the real API on a committing Postgres.

The app (the agents' blueprints only) is served on loopback by werkzeug; customers' turns
go through the real inbound path. A sender is not part of this test: ``HAND_OFF`` records
who was handed on, and the outbox rows are read back. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from conversation import handoff
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.db import make_engine
from conversation.events import InboundEvent, UserRef
from conversation.models import OutboundMessage, utcnow
from conversation.service import ConversationService
from conversation.state import EngineConfig
from conversation.turn import process_event
from settings import load_settings
from templates.loader import load_directory
from tests.support.database import fresh_database
from tests.support.stack import ROOT
from tests.webhook.browser import ARTIFACTS, chromium
from webhook import create_app

pytestmark = pytest.mark.postgres
TOKEN = "inbox-browser-token"
ANN, BEA = "15550007001", "15550007002"


class Served:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.handed: list[str] = []
        self.turns = 0

    def scope(self) -> Any:
        @contextmanager
        def unit() -> Iterator[Session]:
            with self.factory() as session, session.begin():
                yield session

        return unit()

    def customer_writes(self, phone: str, text: str, minutes_ago: float = 0) -> None:
        """One real turn through the inbound path (its own committed unit of work)."""
        self.turns += 1
        at = utcnow() - timedelta(minutes=minutes_ago)
        event = InboundEvent(wamid=f"wamid.inbox.{phone}.{self.turns}", user=UserRef(None, phone, "Ann"),
                             phone_number_id="PNID", timestamp=at, kind="text", message_type="text", text=text,
                             raw={"type": "text", "text": {"body": text}})  # fmt: skip
        with self.scope() as session:  # a handed-off customer's message is kept, with no flow reply
            process_event(session, event, EngineConfig(), mark_as_read=False, now=at)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Served, str]]:
    with fresh_database() as url:
        engine = make_engine(url)
        served = Served(sessionmaker(engine, expire_on_commit=False))
        shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
        with served.scope() as session:
            ConversationService(session).upsert_templates(shipped.templates.values())
        served.customer_writes(ANN, "help", minutes_ago=12)
        served.customer_writes(BEA, "hi", minutes_ago=3)
        with served.scope() as session:
            handoff.request(session, handoff.Customer(ANN, ANN, None, "PNID"), utcnow() - timedelta(minutes=11))
            handoff.request(session, handoff.Customer(BEA, BEA, None, "PNID"), utcnow() - timedelta(minutes=2))
        served.customer_writes(ANN, "anyone there?", minutes_ago=10)
        app: Flask = create_app(
            {
                "SETTINGS": load_settings({"PARLEY_ENV": "test", "PARLEY_ADMIN_TOKEN": TOKEN}),
                "ENQUEUE": lambda body: None,
                "SESSION_SCOPE": served.scope,
                "HAND_OFF": served.handed.append,
            }
        )
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield served, f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            thread.join()
            engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def test_an_agent_answers_a_waiting_customer_and_releases_them(browser: Any, served: tuple[Served, str]) -> None:
    from playwright.sync_api import expect

    stack, base_url = served
    context = browser.new_context(viewport={"width": 1300, "height": 850}, base_url=base_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto("/console/inbox")
    expect(page.locator("#inbox")).to_be_hidden()
    page.fill("#token", "not-the-token")
    page.click("#login button")
    expect(page.locator("#status")).to_have_text("Wrong admin token.")
    page.fill("#token", TOKEN)
    page.click("#login button")

    rows = page.locator("#customers li")
    expect(rows).to_have_count(2)
    expect(rows.locator(".user")).to_have_text([ANN, BEA])  # oldest first
    # handed off 11 minutes before the page loaded; the exact minute depends on how fast this runs
    expect(rows.first.locator(".meta")).to_have_text(re.compile(r"^waiting 1[1-9] min · anyone there\?$"))
    expect(rows.first.locator(".badge")).to_have_text("1")
    expect(rows.nth(1).locator(".meta")).to_have_text(re.compile(r"^waiting \d+ min$"))  # nothing written since

    rows.first.click()
    lines = page.locator("#transcript li")
    expect(lines).to_have_count(3)
    expect(lines.nth(0)).to_contain_text("help")
    expect(lines.nth(1)).to_contain_text("How can we help?")  # what the bot said before
    expect(lines.nth(2)).to_contain_text("anyone there?")
    page.screenshot(path=str(ARTIFACTS / "inbox-waiting.png"))

    page.fill("#text", "Hi Ann, this is Carla. How can I help?")
    page.click("#reply button")
    expect(lines).to_have_count(4)
    expect(lines.nth(3)).to_have_class("out")
    expect(page.locator("#text")).to_have_value("")
    expect(rows.first.locator(".badge")).to_be_hidden()  # answered: nothing waiting
    assert stack.handed == [ANN]
    with stack.scope() as session:
        sent = session.scalars(select(OutboundMessage).where(OutboundMessage.user_key == ANN)).all()
        assert sent[-1].content["text"]["body"] == "Hi Ann, this is Carla. How can I help?"

    stack.customer_writes(ANN, "My order never came")  # appears without a reload
    expect(lines).to_have_count(5)
    expect(lines.nth(4)).to_contain_text("My order never came")
    expect(rows.first.locator(".badge")).to_have_text("1")
    page.screenshot(path=str(ARTIFACTS / "inbox-conversation.png"))

    page.click("#release")
    expect(rows).to_have_count(1)
    expect(rows.locator(".user")).to_have_text([BEA])
    expect(page.locator("#conversation")).to_be_hidden()
    with stack.scope() as session:
        assert handoff.open_handoff(session, ANN) is None
    page.screenshot(path=str(ARTIFACTS / "inbox-released.png"))
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
