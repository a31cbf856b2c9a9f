"""``flask --app webhook chat``: through the real pipeline, and ``--in-process`` on Postgres."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from conversation import db
from conversation.models import ConversationState, OutboundMessage
from settings import load_settings
from tests.conftest import engine_with_shipped_flows
from tests.support.stack import Stack
from tests.support.webhooks import APP_SECRET, new_phone
from tests.webhook.console.test_simulator_browser import sandbox_stack
from webhook import create_app
from webhook.cli.chat import render

COFFEE = "hi\n1\n1\n2\n1\n"  # New Order, Coffee, quantity 2 (typed), Confirm
ORDER = re.compile(r"Order placed! Your order number is ORD-\d{6}\.")


def invoke(app: Flask, args: list[str], lines: str) -> Result:
    result = app.test_cli_runner().invoke(args=["chat", *args], input=lines)
    assert result.exit_code == 0, result.output
    return result


# --- rendering ---------------------------------------------------------------------------


def test_a_list_is_numbered_across_its_sections() -> None:
    content = {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "header": {"type": "text", "text": "Our menu"},
            "body": {"text": "What would you like?"},
            "footer": {"text": "VAT included"},
            "action": {
                "button": "View",
                "sections": [
                    {"title": "Drinks", "rows": [{"id": "coffee", "title": "Coffee", "description": "Hot"}]},
                    {"title": "Food", "rows": [{"id": "pasta", "title": "Pasta"}]},
                ],
            },
        },
    }
    shown = render(content, "wamid.X")
    assert [line for line in shown.lines if ")" in line] == ["  1) Coffee - Hot", "  2) Pasta"]
    assert (shown.options[1].id, shown.options[1].kind, shown.options[1].context_wamid) == ("pasta", "list", "wamid.X")
    assert shown.lines[0].endswith("Our menu\x1b[0m")  # bold on a terminal; click strips it elsewhere


def test_a_text_has_no_options() -> None:
    shown = render({"type": "text", "text": {"body": "How many?\n(a number)"}})
    assert (shown.lines, shown.options) == (["How many?", "(a number)"], [])


# --- through the receiver, the queue, a worker and the sandbox -------------------------------


@pytest.fixture(scope="module")
def sim_stack(request: pytest.FixtureRequest) -> Stack:
    return sandbox_stack(request.config)


def test_coffee_order_through_the_pipeline(sim_stack: Stack) -> None:
    env = {"PARLEY_ENV": "test", "WHATSAPP_APP_SECRET": APP_SECRET, "PARLEY_PUBLIC_URL": sim_stack.base_url}
    app = create_app({"SETTINGS": load_settings(env), "ENQUEUE": lambda _raw: None})
    output = invoke(app, ["--user", new_phone(), "--name", "Mia"], COFFEE).output
    assert "receiver → queue → worker → sandbox" in output
    assert "Hi Mia! How can we help you today?" in output
    assert "  1) Coffee - Freshly brewed, 3.50" in output
    assert "(tapped Coffee)" in output and "How many Coffee? (Enter a number)" in output
    assert "You're ordering 2 x Coffee." in output  # "2" was typed text: the prompt had no options
    assert ORDER.search(output), output


def test_no_receiver_is_a_clear_error() -> None:
    env = {"PARLEY_ENV": "test", "PARLEY_PUBLIC_URL": "http://127.0.0.1:9"}
    app = create_app({"SETTINGS": load_settings(env), "ENQUEUE": lambda _raw: None})
    result = app.test_cli_runner().invoke(args=["chat"], input="hi\n")
    assert result.exit_code == 1
    assert "nothing answers at http://127.0.0.1:9" in result.output


# --- in-process: the engine on this process's session, no worker -----------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with engine_with_shipped_flows() as engine:
        yield engine


@pytest.fixture
def in_process_app(engine: Engine) -> Iterator[Flask]:
    with db.using_engine(engine):  # the process's engine is back after the test
        yield create_app({"SETTINGS": load_settings({"PARLEY_ENV": "test"}), "ENQUEUE": lambda _raw: None})


def rows(engine: Engine, model: Any, user: str) -> list[Any]:
    with Session(engine) as session:
        return list(session.scalars(select(model).where(model.user_key == user)))


def test_in_process_coffee_order_leaves_nothing_to_send(in_process_app: Flask, engine: Engine) -> None:
    phone = new_phone()
    output = invoke(in_process_app, ["--in-process", "--user", phone], COFFEE).output
    assert "in-process engine" in output
    assert ORDER.search(output), output
    assert rows(engine, ConversationState, phone) == []  # the order ended the conversation
    # The replies were delivered on the terminal: no outbox row waits for the sweep.
    assert rows(engine, OutboundMessage, phone) == []


def test_in_process_keeps_the_conversation_between_lines(in_process_app: Flask, engine: Engine) -> None:
    user = "US.1" + str(uuid.uuid4().int)[:18]
    output = invoke(in_process_app, ["--in-process", "--user", user], "hi\n1\n\\7\n/quit\nnever sent\n").output
    assert "Our menu" in output
    # "\7" sends "7" as text: not one of the six rows, so the list comes again.
    (state,) = rows(engine, ConversationState, user)
    assert (state.conversation_flow, state.current_step) == ("new_order", "initial")
    assert "never sent" not in output
