"""The engine on the kinds that are not plain answers: events, edits, orders, Flow replies.

Pure engine calls (no database): each test pins one rule of ``conversation/kind_routes.py``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from conversation.engine import handle
from conversation.events import Cart, CartItem, IdentityChange, InboundEvent
from conversation.kind_routes import FLOW_SUBMISSION
from conversation.state import CustomerState, Ended, StepResult, Submit, TemplateSet
from templates.schema import TemplateDef
from tests.conversation.test_engine import CONFIG, MENU, NOW, SHOP, SURVEY, USER, Actions, at, bodies, tap

CART = Cart("cat-1", (CartItem("coffee", 2, "3.50", "EUR"), CartItem("sandwich", 1, "5.90", "EUR")), "by 9")
ORDER_FLOW = {
    "template_name": "cart",
    "template_type": "button",
    "trigger": "order",
    "menu_structure": {
        "type": "button",
        "body": {"text": "{cart_summary}, {cart_total}. Place it?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
        "steps": {
            "initial": {"next_steps": {"yes": "done"}},
            "done": {"action": "place_order", "prompt": "Order {order_id} placed", "end_conversation": True},
        },
    },
}
WITH_ORDER_FLOW = TemplateSet(
    {d["template_name"]: TemplateDef.model_validate(d) for d in (MENU, SHOP, SURVEY, ORDER_FLOW)}
)
WITHOUT = TemplateSet({d["template_name"]: TemplateDef.model_validate(d) for d in (MENU, SHOP, SURVEY)})


def event(kind: str, wamid: str = "wamid.2", **fields: Any) -> InboundEvent:
    return InboundEvent(wamid, USER, "PNID", NOW, kind, kind, **fields)  # type: ignore[arg-type]


def typed(body: str, wamid: str) -> InboundEvent:
    return InboundEvent(wamid, USER, "PNID", NOW, "text", "text", text=body)


def run(
    state: CustomerState, inbound: InboundEvent, templates: TemplateSet = WITHOUT, actions: Any = None
) -> StepResult:
    return handle(templates, state, inbound, NOW, CONFIG, actions or Actions())


def follow(state: CustomerState, *events: InboundEvent) -> StepResult:
    result = None
    for inbound in events:
        result = run(state, inbound)
        state = CustomerState(result.conversation, profile_name="Ann")
    assert result is not None
    return result


IDENTITY = IdentityChange("15550001111", None, "15550002222", None)
EVENTS = [
    (event("revoke", target_wamid="wamid.1"), "recorded"),
    (event("call_permission", text="accept"), "recorded"),
    (event("notice", text="security code changed"), "recorded"),
    (event("welcome"), "recorded"),
    (event("identity", identity=IDENTITY), "recorded"),
    (event("unknown"), "unknown_kind"),
]


@pytest.mark.parametrize(("inbound", "outcome"), EVENTS)
@pytest.mark.parametrize("live", [True, False])
def test_events_are_recorded_and_never_answered(inbound: InboundEvent, outcome: str, live: bool) -> None:
    state = at("shop", "qty", product="tea") if live else CustomerState(None)
    result = run(state, inbound)
    assert result.outcome == outcome
    assert result.messages == [] and result.effects == []  # no fallback, no FallbackSent
    assert result.conversation == state.conversation  # not even touched: an event is not the customer speaking


def test_an_edit_while_a_person_has_the_customer_is_kept_for_them_not_answered() -> None:
    start = at("shop", "qty", product="tea", product_title="Tea")
    answered = follow(start, typed("2", "wamid.ans"))
    paused = replace(CustomerState(answered.conversation), handed_off=True)
    result = run(paused, event("edit", target_wamid="wamid.ans", text="3"))
    assert result.outcome == "waiting" and result.messages == [] and result.conversation == answered.conversation


def test_an_edit_of_the_latest_typed_answer_answers_that_step_again() -> None:
    start = at("shop", "qty", product="tea", product_title="Tea")
    answered = follow(start, typed("2", "wamid.ans"))
    assert answered.conversation.step == "ok" and answered.conversation.context["qty"] == 2
    result = follow(start, typed("2", "wamid.ans"), event("edit", target_wamid="wamid.ans", text="3"))
    assert result.outcome == "advanced" and result.conversation.step == "ok"
    assert result.conversation.context["qty"] == 3
    assert bodies(result) == ["3 x Tea?"]


def test_an_invalid_edit_puts_the_customer_back_on_the_question() -> None:
    start = at("shop", "qty", product="tea", product_title="Tea")
    result = follow(start, typed("2", "wamid.ans"), event("edit", target_wamid="wamid.ans", text="lots"))
    assert result.outcome == "invalid" and result.conversation.step == "qty"


@pytest.mark.parametrize(
    "steps",
    [
        # an edit of an older answer, not the latest
        [typed("2", "wamid.ans"), event("edit", target_wamid="wamid.older", text="3")],
        # an edit without text (a caption removed)
        [typed("2", "wamid.ans"), event("edit", target_wamid="wamid.ans")],
    ],
)
def test_any_other_edit_is_recorded_only(steps: list[InboundEvent]) -> None:
    start = at("shop", "qty", product="tea", product_title="Tea")
    before = follow(start, *steps[:-1])
    result = run(CustomerState(before.conversation, profile_name="Ann"), steps[-1])
    assert result.outcome == "recorded" and result.messages == [] and result.effects == []
    assert result.conversation == before.conversation


def test_an_edit_with_no_conversation_is_recorded_not_the_fallback() -> None:
    result = run(CustomerState(None), event("edit", target_wamid="wamid.ans", text="hi"))
    assert (result.outcome, result.messages, result.conversation) == ("recorded", [], None)


def test_a_deletion_of_the_latest_answer_undoes_nothing() -> None:
    start = at("shop", "qty", product="tea", product_title="Tea")
    answered = follow(start, typed("2", "wamid.ans"))
    result = run(CustomerState(answered.conversation), event("revoke", target_wamid="wamid.ans"))
    assert result.conversation == answered.conversation and result.messages == []


def test_an_order_starts_the_order_flow_with_the_cart_in_its_context() -> None:
    result = run(at("shop", "qty", product="tea"), event("order", cart=CART), WITH_ORDER_FLOW)
    assert result.outcome == "started" and result.conversation.template == "cart"
    assert Ended("shop", "qty", "switched") in result.effects
    assert bodies(result) == ["2 x coffee, 1 x sandwich, 12.90 EUR. Place it?"]
    context = result.conversation.context
    assert context["cart_items"][0] == {"product_id": "coffee", "quantity": 2, "price": "3.50", "currency": "EUR"}
    assert (context["cart_note"], context["catalog_id"]) == ("by 9", "cat-1")


def test_the_order_flow_confirms_and_places_the_cart() -> None:
    started = run(CustomerState(None), event("order", cart=CART), WITH_ORDER_FLOW)
    actions = Actions()
    done = run(CustomerState(started.conversation), tap("yes"), WITH_ORDER_FLOW, actions)
    assert done.outcome == "completed" and bodies(done) == ["Order ORD-000042 placed"]
    [(action, context)] = actions.calls
    assert action == "place_order" and context["cart_summary"] == "2 x coffee, 1 x sandwich"


def test_an_order_without_an_order_flow_is_stored_and_acknowledged() -> None:
    actions = Actions()
    live = at("shop", "qty", product="tea")
    result = run(live, event("order", cart=CART), WITHOUT, actions)
    assert result.outcome == "order_received" and result.conversation == live.conversation
    assert bodies(result) == [
        "Thank you! We received your order ORD-000042: 2 x coffee, 1 x sandwich. We'll be in touch shortly."
    ]
    [(action, context)] = actions.calls
    assert action == "place_order" and context["cart_total"] == "12.90 EUR"


def test_an_order_that_cannot_be_stored_says_so() -> None:
    result = run(CustomerState(None), event("order", cart=CART), WITHOUT, Actions(fail=True))
    assert result.outcome == "action_failed" and "went wrong" in bodies(result)[0]


def test_a_cart_in_two_currencies_has_no_total() -> None:
    mixed = Cart(None, (CartItem("a", 1, "1.00", "EUR"), CartItem("b", 1, "1.00", "USD")))
    result = run(CustomerState(None), event("order", cart=mixed), WITH_ORDER_FLOW)
    assert result.conversation.context["cart_total"] == ""


ANSWERS = {"flow_token": "t-1", "party_size": "4", "_invalid": 99}


def test_flow_answers_with_no_conversation_become_a_submission() -> None:
    result = run(CustomerState(None), event("flow_reply", answers=ANSWERS))
    assert result.outcome == "submitted" and result.messages == []
    assert result.effects == [Submit(FLOW_SUBMISSION, {"flow_token": "t-1", "party_size": "4"})]


def test_flow_answers_answer_a_question_step_and_move_on() -> None:
    result = run(at("survey", "why"), event("flow_reply", answers=ANSWERS))
    assert result.outcome == "completed"
    [submit] = [e for e in result.effects if isinstance(e, Submit)]
    assert submit.answers["party_size"] == "4" and "_invalid" not in submit.answers


def test_flow_answers_on_a_menu_step_join_its_context_and_wait() -> None:
    live = at("shop", "ok", product="tea", qty=2)
    result = run(live, event("flow_reply", answers=ANSWERS))
    assert result.outcome == "recorded" and result.messages == []
    assert result.conversation.step == "ok" and result.conversation.context["party_size"] == "4"
    assert result.conversation.context.get("_invalid") is None


def test_an_expired_conversation_still_ends_before_an_event_is_recorded() -> None:
    stale = replace(at("shop", "qty").conversation, expires_at=NOW)
    result = run(CustomerState(stale), event("revoke", target_wamid="wamid.1"))
    assert result.outcome == "recorded" and result.conversation is None
    assert result.effects == [Ended("shop", "qty", "expired")]


def test_an_edit_of_a_menu_answer_is_recorded_only() -> None:
    # The tap moved the customer from the product list to the quantity question; taps cannot
    # be edited in WhatsApp, and a menu answer is not re-answered even if one were.
    tapped = run(at("shop", "initial"), replace(tap("tea", "Tea"), wamid="wamid.tap"))
    assert tapped.conversation.step == "qty"
    result = run(CustomerState(tapped.conversation), event("edit", target_wamid="wamid.tap", text="cake"))
    assert result.outcome == "recorded" and result.conversation == tapped.conversation


def test_the_cafe_cart_flow_confirms_a_cart_like_a_typed_order() -> None:
    from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
    from templates.lint import lint_definitions
    from templates.loader import load_directory
    from tests.conftest import ROOT

    loaded = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    assert loaded.errors == []
    flows = loaded.templates
    files = {name: f"{name}.yaml" for name in flows}
    assert lint_definitions(flows, files, ACTION_PROVIDES, GLOBAL_PLACEHOLDERS) == []
    cafe = TemplateSet(flows)
    assert cafe.order_flow == "cart_order"
    started = run(CustomerState(None, profile_name="Ann"), event("order", cart=CART), cafe)
    assert started.outcome == "started"
    [confirm] = started.messages
    assert confirm["interactive"]["body"]["text"] == (
        "You're ordering 2 x coffee, 1 x sandwich. Total: 12.90 EUR. Shall I place the order?"
    )
    actions = Actions()
    done = run(CustomerState(started.conversation), tap("confirm"), cafe, actions)
    assert done.outcome == "completed"
    assert bodies(done) == ["Order placed! Your order number is ORD-000042. We'll let you know when it's ready."]
    [(action, placed)] = actions.calls
    assert action == "place_order" and placed["cart_items"][1]["product_id"] == "sandwich"
