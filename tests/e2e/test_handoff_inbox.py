"""The agent inbox in Debian's chromium on the running system.

A customer asks for a person through signed webhooks (support, then Contact), an agent
logs in at ``/console/inbox`` with the admin token, reads the transcript, answers (the
reply reaches the stub Graph API through the workers), sees the customer's next message
arrive without a reload, and releases them; the customer's "hi" then gets the main menu.
Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from settings import DEV_ADMIN_TOKEN
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack
from tests.support.webhooks import contact, message, webhook
from tests.webhook.browser import ARTIFACTS, chromium

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 30


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def replies(graph: GraphStub, phone: str) -> list[Any]:
    return [r for r in graph.requests() if r.kind == "message" and r.recipient in {phone, "+" + phone}]


def wait_replies(graph: GraphStub, phone: str, n: int) -> list[Any]:
    graph.wait_for(lambda _: len(replies(graph, phone)) >= n, TIMEOUT)
    return replies(graph, phone)


def say(stack: Stack, phone: str, text: str | None = None, tap: tuple[str, str] | None = None) -> None:
    payload = webhook([message(phone, text=text, tap=tap)], [contact(phone, name="Ann")])
    assert stack.post(payload).status_code == 200


def body(request: Any) -> str:
    content = request.body
    return content["text"]["body"] if content["type"] == "text" else content["interactive"]["body"]["text"]


def test_an_agent_answers_and_releases_a_customer_in_the_inbox(browser: Any, stack: Stack, graph: GraphStub) -> None:
    from playwright.sync_api import expect

    phone = "1555" + str(uuid.uuid4().int)[:7]
    say(stack, phone, "hi")
    wait_replies(graph, phone, 1)
    say(stack, phone, tap=("support", "Support"))
    wait_replies(graph, phone, 2)
    say(stack, phone, tap=("contact", "Contact us"))
    wait_replies(graph, phone, 3)
    say(stack, phone, "anyone there? my order is late")

    context = browser.new_context(viewport={"width": 1300, "height": 850}, base_url=stack.base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT * 1000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.goto("/console/inbox")
        page.fill("#token", DEV_ADMIN_TOKEN)
        page.click("#login button")
        row = page.locator("#customers li", has_text=phone)
        expect(row.locator(".meta")).to_have_text(
            re.compile(r"^waiting \d+ (s|min) · anyone there\? my order is late$")
        )
        expect(row.locator(".badge")).to_have_text("2")  # the tap on Contact and the question

        row.click()
        lines = page.locator("#transcript li")
        expect(lines).to_have_count(7)
        expect(lines.nth(1)).to_contain_text("How can we help you today?")  # the bot, before the handoff
        expect(lines.nth(5)).to_contain_text("a person from our team will answer you here")
        expect(lines.nth(6)).to_contain_text("anyone there? my order is late")
        page.screenshot(path=str(ARTIFACTS / "e2e-inbox-waiting.png"))

        page.fill("#text", "Hi Ann, this is Carla. Let me check your order.")
        page.click("#reply button")
        expect(lines).to_have_count(8)
        expect(lines.nth(7)).to_have_class("out")
        assert body(wait_replies(graph, phone, 4)[3]) == "Hi Ann, this is Carla. Let me check your order."
        expect(row.locator(".badge")).to_be_hidden()

        say(stack, phone, "Thank you, it is order ORD-000123")  # arrives without a reload
        expect(lines).to_have_count(9)
        expect(lines.nth(8)).to_contain_text("ORD-000123")
        expect(row.locator(".badge")).to_have_text("1")
        page.screenshot(path=str(ARTIFACTS / "e2e-inbox-conversation.png"))
        assert len(replies(graph, phone)) == 4  # the bot said nothing to it

        page.click("#release")
        expect(row).to_have_count(0)
        expect(page.locator("#conversation")).to_be_hidden()
        page.screenshot(path=str(ARTIFACTS / "e2e-inbox-released.png"))
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"

    say(stack, phone, "hi")
    assert body(wait_replies(graph, phone, 5)[4]).startswith("Hi Ann!")
