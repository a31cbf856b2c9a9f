"""``flask --app webhook send-test``: a signed, Meta-shaped text message to a receiver.

The receiver is the loopback stand-in of the simulator's tests: what matters here is
the body and signature that reach it, which the real parser must accept.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from conversation.payload import parse_payload
from settings import load_settings
from tests.webhook.console.test_simulator import SECRET, Receiver
from webhook import create_app
from webhook.signature import verify


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def app_for(receiver: Receiver) -> Flask:
    settings = load_settings({"PARLEY_ENV": "test", "WHATSAPP_APP_SECRET": SECRET, "PARLEY_PUBLIC_URL": receiver.url})
    return create_app({"SETTINGS": settings, "ENQUEUE": lambda body: None})


def test_a_phone_user_sends_a_signed_text(receiver: Receiver) -> None:
    result = app_for(receiver).test_cli_runner().invoke(args=["send-test", "hi there", "--user", "15550001111"])
    assert result.exit_code == 0, result.output
    assert f"POST {receiver.url}/webhook → 200" in result.output
    assert f"replies appear at {receiver.url}/sandbox" in result.output
    ((raw, signature),) = receiver.posts
    assert verify(raw, signature, SECRET)
    parsed = parse_payload(raw)
    (event,) = parsed.messages
    assert (event.kind, event.text) == ("text", "hi there")
    assert (event.user.phone, event.user.user_id) == ("15550001111", None)
    assert receiver.bodies()[0]["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == "100000000000001"


def test_a_bsuid_user_carries_no_phone(receiver: Receiver) -> None:
    args = ["send-test", "hi", "--user", "US.13491208655302741918", "--phone-number-id", "200000000000002"]
    result = app_for(receiver).test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    (event,) = parse_payload(receiver.posts[0][0]).messages
    assert (event.user.phone, event.user.user_id) == (None, "US.13491208655302741918")
    assert event.phone_number_id == "200000000000002"


def test_nothing_listening_is_a_one_line_error() -> None:
    settings = load_settings({"PARLEY_ENV": "test", "PARLEY_PUBLIC_URL": "http://127.0.0.1:9"})
    app = create_app({"SETTINGS": settings, "ENQUEUE": lambda body: None})
    result = app.test_cli_runner().invoke(args=["send-test", "hi"])
    assert result.exit_code == 1
    assert "nothing answers at http://127.0.0.1:9/webhook: is the receiver running (make run)?" in result.output
