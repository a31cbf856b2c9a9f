"""A customer in the simulator asks for a person, and an agent in the inbox answers them.

Two tabs of Debian's chromium on the sandbox stack (gunicorn, Celery workers, Beat, Redis,
Postgres; replies recorded by the sandbox Graph API, which the simulator shows): what a
newcomer does after ``make run``. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from settings import DEV_ADMIN_TOKEN
from tests.support.stack import Stack
from tests.webhook.browser import ARTIFACTS
from tests.webhook.console.test_simulator_browser import browser, sandbox_stack

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT_MS = 20_000
__all__ = ["browser"]  # the module-scoped chromium fixture of the simulator's browser test


@pytest.fixture(scope="module")
def sim_stack(request: pytest.FixtureRequest) -> Stack:
    return sandbox_stack(request.config)


def send(tab: Any, text: str) -> None:
    tab.fill("#message", text)
    tab.press("#message", "Enter")


def test_the_simulators_customer_asks_for_a_person_who_answers_in_the_inbox(browser: Any, sim_stack: Stack) -> None:
    from playwright.sync_api import expect

    phone = f"1555{uuid.uuid4().int % 10**7:07d}"
    context = browser.new_context(viewport={"width": 1300, "height": 850}, base_url=sim_stack.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        sim = context.new_page()
        sim.on("pageerror", lambda exc: errors.append(f"simulator: {exc}"))
        sim.goto(f"/simulator/?user={phone}&name=Mia")
        expect(sim.locator("#chat-sub")).to_have_text(f"chatting as Mia · {phone}")  # the page is set up
        send(sim, "hi")
        sim.locator(".msg.interactive.button").last.get_by_role("button", name="Support").click()
        menu = sim.locator(".msg.interactive.list").last
        expect(menu).to_contain_text("How can we help?")
        menu.get_by_role("button", name="Support options").click()
        sim.locator("#sheet .row", has_text="Contact us").click()
        incoming = sim.locator(".bubble.in")
        expect(incoming.last).to_contain_text("a person from our team will answer you here")
        expect(incoming).to_have_count(3)
        send(sim, "anyone there?")

        inbox = context.new_page()
        inbox.on("pageerror", lambda exc: errors.append(f"inbox: {exc}"))
        inbox.goto("/console/inbox")
        inbox.fill("#token", DEV_ADMIN_TOKEN)
        inbox.click("#login button")
        row = inbox.locator("#customers li", has_text=phone)
        expect(row.locator(".meta")).to_contain_text("anyone there?")
        row.click()
        expect(inbox.locator("#transcript li").last).to_contain_text("anyone there?")
        inbox.fill("#text", "Hi Mia, Carla here. How can I help?")
        inbox.click("#reply button")
        expect(inbox.locator("#transcript li").last).to_contain_text("Carla here")
        inbox.screenshot(path=str(ARTIFACTS / "inbox-from-simulator.png"))

        expect(incoming.last).to_contain_text("Hi Mia, Carla here. How can I help?")
        expect(incoming).to_have_count(4)  # the bot said nothing to "anyone there?"
        sim.screenshot(path=str(ARTIFACTS / "simulator-person-answered.png"))

        inbox.click("#release")
        expect(row).to_have_count(0)
        send(sim, "hi")
        expect(incoming).to_have_count(5)
        expect(incoming.last).to_contain_text("Hi Mia! How can we help you today?")
        sim.screenshot(path=str(ARTIFACTS / "simulator-after-release.png"))
    finally:
        context.close()
    assert errors == [], f"JavaScript errors: {errors}"
