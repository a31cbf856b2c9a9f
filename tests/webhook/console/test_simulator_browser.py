"""The simulator page in a real headless browser, over the real stack with the sandbox.

gunicorn, two Celery workers, Beat and a private Redis (``tests/support/stack.py``) with no
Meta token, so the bot's replies go to the receiver's own ``/sandbox``, and with
Graphviz taken off their PATH, as on a machine that never installed it: the page draws
the flow itself. Debian's chromium, driven by Playwright (``.ci/run`` installs it;
Playwright's own browser download is never used). Screenshots land in
``test-artifacts/``; ``simulator-confirmation.png`` is the one docs/simulator.png copies.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.database import create_database, drop_database, migrate
from tests.support.services import service_missing
from tests.support.stack import Stack, new_workdir, wait_until
from tests.support.webhooks import new_phone
from tests.webhook.browser import ARTIFACTS, TEXT_OVERFLOW_JS, chromium, path_without_dot

_STACK = pytest.StashKey[Stack]()


def sandbox_stack(config: pytest.Config) -> Stack:
    """The sandbox stack, started once per test session for every module that asks for it."""
    if _STACK in config.stash:
        return config.stash[_STACK]
    if shutil.which("redis-server") is None:
        service_missing("redis-server (binary)", FileNotFoundError("redis-server"))
    try:
        url = create_database()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    migrate(url)
    stack = Stack(database_url=url, stub=None, workdir=new_workdir(), sandbox=True)

    def stop() -> None:
        stack.stop_all()
        drop_database(url)

    config.add_cleanup(stop)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", path_without_dot(stack.workdir / "path"))  # its processes never find `dot`
        stack.start()
    config.stash[_STACK] = stack
    return stack


@pytest.fixture(scope="module")
def sim_stack(request: pytest.FixtureRequest) -> Stack:
    return sandbox_stack(request.config)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Any, sim_stack: Stack) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=sim_stack.base_url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def send(page: Any, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def sandbox_texts(stack: Stack, recipient: str) -> list[str]:
    rows = requests.get(f"{stack.base_url}/sandbox/messages", params={"recipient": recipient}, timeout=5).json()
    return [r["body"]["text"]["body"] for r in rows if r["body"].get("type") == "text"]


def test_coffee_order_clicked_through(page: Any, sim_stack: Stack) -> None:
    from playwright.sync_api import expect

    phone = new_phone()
    page.goto(f"/simulator/?user={phone}&name=Mia")
    expect(page.locator("#chat-sub")).to_have_text(f"chatting as Mia · {phone}")
    expect(page.locator("#mode")).to_have_text("sandbox")

    send(page, "hi")
    welcome = page.locator(".msg.interactive.button").last
    expect(welcome.locator(".header")).to_have_text("Welcome to Parley Café")
    expect(welcome.locator(".text")).to_have_text("Hi Mia! How can we help you today?")
    expect(welcome.locator(".footer")).to_have_text("Tap an option, or type cancel to stop")
    expect(welcome.locator(".reply-btn")).to_have_text(["New Order", "Support", "My Account"])
    expect(page.locator("#state-template")).to_have_text("main_menu")

    welcome.get_by_role("button", name="New Order").click()
    menu = page.locator(".msg.interactive.list").last
    expect(menu.locator(".header")).to_have_text("Our menu")
    expect(menu.locator(".footer")).to_have_text("Prices include VAT")
    menu.get_by_role("button", name="View Products").click()
    sheet = page.locator("#sheet")
    expect(sheet).to_be_visible()
    expect(page.locator("#sheet-title")).to_have_text("View Products")
    expect(sheet.locator(".section-title")).to_have_text(["Drinks", "Food"])
    expect(sheet.locator(".row-title")).to_have_text(["Coffee", "Tea", "Juice", "Sandwich", "Salad", "Pasta"])
    coffee = sheet.locator(".row", has_text="Coffee")
    expect(coffee.locator(".row-desc")).to_have_text("Freshly brewed, 3.50")
    coffee.click()
    expect(sheet).to_be_hidden()

    expect(page.locator(".bubble.in").last).to_contain_text("How many Coffee? (Enter a number)")
    expect(page.locator("#state-step")).to_have_text("quantity")
    expect(page.locator("#diagram g.node.current")).to_have_attribute("id", "step_quantity")

    send(page, "2")
    confirm = page.locator(".msg.interactive.button").last
    expect(confirm.locator(".text")).to_have_text("You're ordering 2 x Coffee. Shall I place the order?")
    expect(page.locator("#state-step")).to_have_text("confirmation")
    expect(page.locator("#state .context").get_by_role("row", name="quantity 2", exact=True)).to_be_visible()
    # The customer's answers only: the engine's bookkeeping ("_answered") is not shown.
    expect(page.locator("#state .context")).not_to_contain_text("_answered")
    expect(page.locator("#state .context tr")).to_have_count(3)  # product, product_title, quantity
    expect(page.locator("#diagram g.node.current")).to_have_attribute("id", "step_confirmation")
    expect(page.locator("#diagram-name")).to_have_text("new_order")
    # A picture, drawn in the page: every step a node, each label inside its box.
    diagram = page.locator("#diagram > svg")
    expect(diagram.locator("g.node")).to_have_count(7)  # start, 4 steps, main_menu, end
    expect(diagram.locator("g.node.current")).to_have_count(1)
    fits = page.evaluate(TEXT_OVERFLOW_JS, diagram.element_handle())
    assert [f for f in fits if f["overflow"] > -2] == [], fits
    # The funnel comes from the admin API: every step of the flow, this run counted.
    expect(page.locator("#funnel .funnel-step")).to_have_text(["initial", "quantity", "confirmation", "complete"])
    expect(page.locator("#funnel .funnel-row.current .funnel-step")).to_have_text("confirmation")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "simulator-confirmation.png"))

    confirm.get_by_role("button", name="Confirm").click()
    done = page.locator(".bubble.in").last
    expect(done).to_contain_text(re.compile(r"Order placed! Your order number is ORD-\d{6}\."))
    order = re.search(r"ORD-\d{6}", done.inner_text())
    assert order is not None
    # What the page shows is exactly what the sandbox Graph API received.
    assert any(order.group(0) in text for text in sandbox_texts(sim_stack, f"+{phone}"))
    # Every message was handled by a worker: each bubble carries the blue read ticks.
    expect(page.locator(".bubble.out .text")).to_have_text(["hi", "New Order", "Coffee", "2", "Confirm"])
    expect(page.locator(".bubble.out[data-state=read]")).to_have_count(5)
    expect(page.locator("#state")).to_contain_text("No live conversation")
    expect(page.locator("#waiting")).to_be_hidden()
    page.screenshot(path=str(ARTIFACTS / "simulator.png"), full_page=True)

    # The business takes the order home: the answers export holds it.
    page.select_option("#funnel-template", "new_order")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export answers (CSV)").click()
    assert download.value.suggested_filename == "new_order-answers.csv"
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    header, *rows = exported.splitlines()
    assert header.startswith("submitted_at,template,user,")
    mine = [r for r in rows if order.group(0) in r]
    assert len(mine) == 1 and ",coffee," in mine[0] and ",Coffee," in mine[0]


def test_the_stack_has_no_graphviz(sim_stack: Stack) -> None:
    # What the page draws above is the browser's own work: the receiver cannot run `dot`.
    answer = requests.get(f"{sim_stack.base_url}/simulator/api/diagram/new_order", timeout=10)
    assert answer.status_code == 503 and "--format html" in answer.json()["error"]



def test_the_notify_panel_offers_and_sends_the_template_in_the_customers_language(page: Any) -> None:
    from playwright.sync_api import expect

    english, portuguese = new_phone(), new_phone()
    page.goto(f"/simulator/?user={english}&name=Mia")
    send(page, "hi")
    expect(page.locator(".bubble.in").last).to_contain_text("Hi Mia!")
    expect(page.locator("#notify-template option:checked")).to_have_text("order_ready (en_US)")

    page.goto(f"/simulator/?user={portuguese}&name=Ana")
    send(page, "oi")
    expect(page.locator(".bubble.in").last).to_contain_text("Olá, Ana!")
    expect(page.locator("#notify-template option:checked")).to_have_text("order_ready (pt_BR)")
    page.fill("#notify-params", "ORD-000009")
    page.click("#notify-send")
    expect(page.locator("#notify-result")).to_contain_text("queued as notification")
    notice = page.locator(".bubble.in").last
    expect(notice).to_contain_text("Boa notícia: seu pedido ORD-000009 está pronto.")
    expect(notice.locator(".tpl-name")).to_have_text("template order_ready · pt_BR")

    # A person who picks another language keeps it while the panel refreshes.
    page.select_option("#notify-template", label="order_ready (en_US)")
    page.wait_for_timeout(2500)  # one refresh of the panel (every 2 s)
    expect(page.locator("#notify-template option:checked")).to_have_text("order_ready (en_US)")

def test_a_silent_pipeline_shows_waiting_for_reply(page: Any) -> None:
    from playwright.sync_api import expect

    # As if no worker ran: the page hears nothing back, whatever the stack does.
    page.route("**/simulator/api/replies*", lambda route: route.fulfill(json={"messages": []}))
    # The page's clock, not the wall's: the notice is due 5 s of page time after the send,
    # however long the machine takes to get there.
    page.clock.install(time=datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    phone = new_phone()
    page.goto(f"/simulator/?user={phone}")
    expect(page.locator("#chat-sub")).to_contain_text(phone)
    page.clock.pause_at(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    send(page, "hi")
    sent = page.locator(".bubble.out").last
    expect(sent).to_have_attribute("data-state", "queued")  # the receiver took it (200)
    page.clock.fast_forward(4000)
    expect(page.locator("#waiting")).to_be_hidden()
    page.clock.fast_forward(2000)
    expect(page.locator("#waiting")).to_have_text("waiting for reply… 6 s (is a worker running?)")


def test_replay_of_an_example_recording_shows_the_conversation(page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(f"/simulator/?user={new_phone()}")
    page.select_option("#replay-example", "coffee_order")
    expect(page.locator("#replay-about")).to_contain_text("delivers the New Order tap twice")
    page.click("#replay-play")
    expect(page.locator("#replay-results li")).to_have_count(7, timeout=30000)
    expect(page.locator("#replay-results li.bad")).to_have_count(0)
    expect(page.locator("#chat-sub")).to_contain_text("15550100101")
    # The thread as the pipeline recorded it: the duplicate tap was handled once.
    expect(page.locator(".bubble.out .text")).to_have_text(["hi", "New Order", "Coffee", "2", "Confirm"])
    expect(page.locator(".bubble.in").last).to_contain_text("Order placed! Your order number is ORD-")


def replay(stack: Stack, name: str) -> dict[str, Any]:
    answer = requests.post(f"{stack.base_url}/simulator/api/replay", json={"example": name}, timeout=40)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["complete"] is True
    assert all(r["webhook_status"] == 200 and r.get("handled", True) for r in body["results"]), body
    return body


def history(stack: Stack, user: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{stack.base_url}/simulator/api/history", params={"user": user}, timeout=5)
    return answer.json()["items"]


def bot_texts(items: list[dict[str, Any]]) -> list[str]:
    out = []
    for item in items:
        content = item.get("content") or {}
        if content.get("type") == "text":
            out.append(content["text"]["body"])
        elif content.get("type") == "interactive":
            out.append(content["interactive"]["body"]["text"])
    return out


def settled(stack: Stack, user: str, last_words: str) -> list[dict[str, Any]]:
    """The user's thread once the bot's reply containing ``last_words`` has been delivered."""
    wait_until(lambda: last_words in " ".join(bot_texts(history(stack, user))), 10, f"{last_words!r} for {user}")
    return history(stack, user)


def test_batched_users_each_get_their_own_conversation(sim_stack: Stack) -> None:
    body = replay(sim_stack, "batch_two_users")
    assert body["users"] == ["15550100103", "US.10000000000000000042"]
    dana = settled(sim_stack, "15550100103", "Order placed!")
    assert [i["text"] for i in dana if i["dir"] == "in"] == ["hi", "New Order", "Tea", "1", "Confirm"]
    # Cleo has no phone: her replies went to her BSUID.
    cleo = settled(sim_stack, "US.10000000000000000042", "Order ORD-000001")
    assert [i["text"] for i in cleo if i["dir"] == "in"] == ["help", "Track my order", "ORD-000001"]
    assert bot_texts(cleo)[:2] == ["How can we help?", "What is your order number? (e.g. ORD-000123)"]


def test_out_of_order_statuses_do_not_disturb_the_conversation(sim_stack: Stack) -> None:
    replay(sim_stack, "statuses_out_of_order")
    items = settled(sim_stack, "15550100102", "Glad I could help.")
    assert [i["text"] for i in items if i["dir"] == "in"] == ["hi", "Support", "FAQ", "That's all"]
    state = requests.get(f"{sim_stack.base_url}/simulator/api/state", params={"user": "15550100102"}, timeout=5)
    assert state.json()["conversation"] is None  # "That's all" ended it
