"""Webhook payloads of every inbound kind (tests/fixtures/payloads) → events of the right kind.

The fixtures are written in the shapes of Meta's messages-webhook reference: order, Flow
completion, call-permission answer, edit, revoke, and the system notices.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from conversation.events import Cart, CartItem, IdentityChange, InboundEvent
from conversation.kinds import KINDS, Role, lookup, role
from conversation.payload import parse_payload
from tests.conversation.test_payload import BOT_WAMID, load, only_message

ANSWER_WAMID = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="


def first_message(data: dict[str, Any]) -> dict[str, Any]:
    return data["entry"][0]["changes"][0]["value"]["messages"][0]


def parse_one(data: dict[str, Any]) -> InboundEvent | str:
    """The one event, or the reason it was skipped."""
    parsed = parse_payload(json.dumps(data))
    if parsed.skipped:
        return parsed.skipped[0].reason
    [event] = parsed.messages
    return event


@pytest.mark.parametrize(
    ("fixture", "kind", "role_"),
    [
        ("text_phone_user", "text", Role.SPEAKING),
        ("order", "order", Role.SPEAKING),
        ("nfm_reply", "flow_reply", Role.SPEAKING),
        ("unsupported", "unsupported", Role.SPEAKING),
        ("reaction", "reaction", Role.EVENT),
        ("revoke", "revoke", Role.EVENT),
        ("call_permission_reply", "call_permission", Role.EVENT),
        ("system_customer_identity_changed", "notice", Role.EVENT),
        ("request_welcome", "welcome", Role.EVENT),
        ("edit", "edit", Role.EDIT),
        ("system_user_changed_number", "identity", Role.IDENTITY),
        ("system_user_changed_user_id", "identity", Role.IDENTITY),
        ("unknown_future_kind", "unknown", Role.UNKNOWN),
    ],
)
def test_each_fixture_gets_its_kind_and_role(fixture: str, kind: str, role_: Role) -> None:
    event = only_message(fixture)
    assert (event.kind, role(event.kind)) == (kind, role_)


def test_the_table_names_each_kind_once_and_unknown_names_fall_through() -> None:
    names = [k.name for k in KINDS]
    assert len(names) == len(set(names))
    assert lookup("interactive", "product_inquiry").role is Role.UNKNOWN
    assert lookup("system", "something_new").kind == "unknown"
    assert lookup("interactive", "nfm_reply").kind == "flow_reply"


def test_an_unknown_interactive_or_system_type_is_unknown_not_skipped() -> None:
    data = load("call_permission_reply")
    first_message(data)["interactive"]["type"] = "carousel_reply"
    assert parse_one(data).kind == "unknown"
    data = load("system_customer_identity_changed")
    first_message(data)["system"]["type"] = "user_left_group"
    assert parse_one(data).kind == "unknown"


def test_order_carries_the_cart_with_exact_prices() -> None:
    event = only_message("order")
    assert event.cart == Cart(
        catalog_id="1483927519384102",
        items=(CartItem("coffee", 2, "3.50", "EUR"), CartItem("sandwich", 1, "5.9", "EUR")),
        note="For pick-up at 9, please",
    )
    assert event.text == "For pick-up at 9, please"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"product_items": []}, "order without product_items"),
        ({"product_items": [{"quantity": 1}]}, "order item without a product_retailer_id"),
        ({"product_items": [{"product_retailer_id": "x", "quantity": "0"}]}, "order item quantity out of range"),
        ({"product_items": [{"product_retailer_id": "x", "quantity": 1.5}]}, "order item quantity is not a whole number"),
        ({"product_items": [{"product_retailer_id": "x", "quantity": 1, "item_price": "NaN"}]}, "order item price out of range"),
        ({"product_items": [{"product_retailer_id": "x", "quantity": 1, "item_price": "abc"}]}, "order item price is not a number"),
    ],
)  # fmt: skip
def test_a_broken_order_is_skipped_with_the_reason(change: dict[str, Any], reason: str) -> None:
    data = load("order")
    first_message(data)["order"].update(change)
    assert parse_one(data) == reason


def test_flow_completion_carries_its_answers_and_the_message_that_sent_it() -> None:
    event = only_message("nfm_reply")
    assert event.answers == {
        "flow_token": "booking-7f3a",
        "party_size": "4",
        "date": "2026-12-24",
        "notes": "window seat",
    }
    assert event.context_wamid == BOT_WAMID


@pytest.mark.parametrize("response_json", ["not json", "[1, 2]", None])
def test_a_flow_completion_without_an_answers_object_is_skipped(response_json: Any) -> None:
    data = load("nfm_reply")
    first_message(data)["interactive"]["nfm_reply"]["response_json"] = response_json
    assert "response_json" in parse_one(data)


def test_edit_and_revoke_name_the_original_message() -> None:
    edit, revoke = only_message("edit"), only_message("revoke")
    assert (edit.target_wamid, edit.text) == (ANSWER_WAMID, "3")
    assert (revoke.target_wamid, revoke.text) == (ANSWER_WAMID, None)


def test_an_edited_caption_is_the_edit_text() -> None:
    data = load("edit")
    first_message(data)["edit"]["message"] = {"type": "image", "image": {"id": "1", "caption": "new caption"}}
    assert parse_one(data).text == "new caption"


def test_edit_or_revoke_without_the_original_is_skipped() -> None:
    for name in ("edit", "revoke"):
        data = load(name)
        del first_message(data)[name]["original_message_id"]
        assert parse_one(data) == f"{name} without original_message_id"


def test_call_permission_answer_is_recorded_with_its_response() -> None:
    event = only_message("call_permission_reply")
    assert (event.kind, event.text, event.context_wamid) == ("call_permission", "accept", BOT_WAMID)


def test_user_changed_number_names_old_and_new_identity() -> None:
    event = only_message("system_user_changed_number")
    # No contacts array in system notices: the notice's previous BSUID and sender are who they were.
    assert (event.user.phone, event.user.user_id) == ("16505551234", "US.13491208655302741918")
    assert event.identity == IdentityChange(
        previous_phone="16505551234",
        previous_user_id="US.13491208655302741918",
        new_phone="16505550000",
        new_user_id="US.77012345678901234567",
    )


def test_user_changed_user_id_names_old_and_new_bsuid() -> None:
    event = only_message("system_user_changed_user_id")
    assert event.user.key == "US.13491208655302741918"
    assert event.identity == IdentityChange(None, "US.13491208655302741918", None, "US.88012345678901234567")


def test_a_number_change_without_a_previous_bsuid_belongs_to_the_old_phone() -> None:
    data = load("system_user_changed_number")
    del first_message(data)["system"]["previous_user_id"]
    event = parse_one(data)
    assert (event.user.key, event.identity.previous_user_id) == ("16505551234", None)


def test_a_bsuid_notice_without_from_is_still_read() -> None:
    data = load("system_user_changed_user_id")
    del first_message(data)["from"]
    assert parse_one(data).user.key == "US.13491208655302741918"


@pytest.mark.parametrize(
    ("fixture", "field"), [("system_user_changed_number", "wa_id"), ("system_user_changed_user_id", "user_id")]
)
def test_an_identity_change_without_the_new_identity_is_skipped(fixture: str, field: str) -> None:
    data = copy.deepcopy(load(fixture))
    del first_message(data)["system"][field]
    assert "without the new" in parse_one(data)
