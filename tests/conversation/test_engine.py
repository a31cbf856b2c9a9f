"""The step engine as a pure function: every rule of precedence and recovery, no database.

Templates here are small inline flows so each test shows the rule it pins; the shipped
flows are covered by the transcripts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conversation.engine import ROUTES, handle
from conversation.events import InboundEvent, UserRef
from conversation.state import (
    CANCEL_ID,
    RESTART_ID,
    RETRY_ID,
    ActionFailed,
    Conversation,
    CustomerState,
    Ended,
    EngineConfig,
    FallbackSent,
    StepResult,
    Submit,
    TemplateSet,
)
from templates.schema import TemplateDef

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
USER = UserRef(user_id=None, phone="15550001111", profile_name="Ann")


def button(i: str, title: str) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": i, "title": title}}


MENU = {
    "template_name": "main_menu",
    "template_type": "button",
    "trigger_keywords": ["hi", "menu"],
    "menu_structure": {
        "type": "button",
        "body": {"text": "Hello {profile_name}!"},
        "action": {"buttons": [button("shop", "Shop"), button("survey", "Survey")]},
        "steps": {"initial": {"context_key": "menu", "next_steps": {"shop": "shop_flow", "survey": "survey"}}},
    },
}
SHOP = {
    "template_name": "shop",
    "template_type": "list",
    "trigger_keywords": ["order"],
    "expiry_hours": 2,
    "menu_structure": {
        "type": "list",
        "body": {"text": "Pick one"},
        "action": {
            "button": "Products",
            "sections": [{"title": "All", "rows": [{"id": "tea", "title": "Tea"}, {"id": "cake", "title": "Cake"}]}],
        },
        "steps": {
            "initial": {"context_key": "product", "next_step": "qty"},
            "qty": {"prompt": "How many {product_title}?", "validation": "number", "next_step": "ok"},
            "ok": {
                "message": {
                    "type": "button",
                    "body": {"text": "{qty} x {product_title}?"},
                    "action": {"buttons": [button("yes", "Yes"), button("back", "Menu")]},
                },
                "next_steps": {"yes": "done", "back": "main_menu"},
            },
            "done": {"action": "place_order", "prompt": "Order {order_id} placed", "end_conversation": True},
        },
    },
}
SURVEY = {
    "template_name": "survey",
    "template_type": "text",
    "trigger_keywords": ["survey"],
    "menu_structure": {
        "type": "text",
        "body": {"text": "Did you like it?"},
        "steps": {
            "initial": {"validation": "yes_no", "next_steps": {"yes": "thanks", "no": "why"}},
            "why": {"prompt": "Why not?", "next_step": "thanks"},
            "thanks": {"prompt": "Thanks!", "end_conversation": True},
        },
    },
}
TEMPLATES = TemplateSet({d["template_name"]: TemplateDef.model_validate(d) for d in (MENU, SHOP, SURVEY)})
CONFIG = EngineConfig(max_invalid_answers=3, fallback_period=timedelta(hours=1))


class Actions:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, dict]] = []

    def run(self, action, call):
        self.calls.append((action, dict(call.context)))
        if self.fail:
            raise ActionFailed("backend down")
        return {"order_id": "ORD-000042"}


def text(body: str) -> InboundEvent:
    return InboundEvent("wamid.1", USER, "PNID", NOW, "text", "text", text=body)


def tap(option_id: str, title: str = "x") -> InboundEvent:
    return InboundEvent("wamid.1", USER, "PNID", NOW, "choice", "interactive", text=title, choice_id=option_id)


def other(kind: str, message_type: str) -> InboundEvent:
    return InboundEvent("wamid.1", USER, "PNID", NOW, kind, message_type)  # type: ignore[arg-type]


def at(template: str, step: str, **context: Any) -> CustomerState:
    conv = Conversation(template, step, dict(context), NOW + timedelta(hours=1), NOW - timedelta(minutes=1))
    return CustomerState(conv, profile_name="Ann")


def run(state: CustomerState, event: InboundEvent, actions: Actions | None = None) -> StepResult:
    return handle(TEMPLATES, state, event, NOW, CONFIG, actions or Actions())


def bodies(result: StepResult) -> list[str]:
    out = []
    for m in result.messages:
        out.append(m["text"]["body"] if m["type"] == "text" else m["interactive"]["body"]["text"])
    return out


# --- starting -----------------------------------------------------------------------


def test_keyword_anywhere_starts_its_template_with_the_entry_message():
    result = run(CustomerState(None, profile_name="Ann"), text("Hi! I'd like the menu"))
    assert result.outcome == "started"
    assert bodies(result) == ["Hello Ann!"]
    assert result.messages[0]["interactive"]["type"] == "button"
    assert (result.conversation.template, result.conversation.step) == ("main_menu", "initial")


def test_no_keyword_gets_the_fallback_once_per_period():
    first = run(CustomerState(None), text("blah"))
    assert bodies(first) == [CONFIG.fallback_text] and first.effects == [FallbackSent()]
    again = run(CustomerState(None, last_fallback_at=NOW - timedelta(minutes=5)), text("blah"))
    assert again.messages == [] and again.outcome == "ignored"
    later = run(CustomerState(None, last_fallback_at=NOW - timedelta(hours=2)), text("blah"))
    assert bodies(later) == [CONFIG.fallback_text]


def test_expiry_is_set_from_the_template_or_the_default():
    assert run(CustomerState(None), text("order")).conversation.expires_at == NOW + timedelta(hours=2)
    assert run(CustomerState(None), text("hi")).conversation.expires_at == NOW + timedelta(hours=24)


def test_expired_conversation_is_treated_as_absent():
    stale = Conversation("shop", "qty", {"product": "tea"}, NOW - timedelta(seconds=1), NOW - timedelta(days=1))
    result = run(CustomerState(stale), text("5"))
    assert result.outcome == "fallback"
    assert Ended("shop", "qty", "expired") in result.effects


# --- answering ----------------------------------------------------------------------


def test_choice_by_tap_by_typed_id_title_or_position():
    for event in (tap("cake", "Cake"), text("cake"), text("CAKE!"), text("2")):
        result = run(at("shop", "initial"), event)
        assert result.conversation.step == "qty"
        assert result.conversation.context == {"product": "cake", "product_title": "Cake"}
        assert bodies(result) == ["How many Cake?"]


def test_answer_slides_expiry():
    result = run(at("shop", "qty", product="tea", product_title="Tea"), text("3"))
    assert result.conversation.expires_at == NOW + timedelta(hours=2)
    assert result.conversation.last_interaction == NOW


def test_invalid_input_gets_the_error_and_the_same_step():
    result = run(at("shop", "qty", product="tea", product_title="Tea"), text("lots"))
    assert result.outcome == "invalid"
    assert result.conversation.step == "qty"
    assert "whole number" in bodies(result)[0]


def test_typed_text_that_is_no_option_resends_the_menu():
    result = run(at("shop", "initial"), text("pizza"))
    assert bodies(result) == [CONFIG.texts.choose, "Pick one"]


def test_after_repeated_invalid_answers_the_customer_is_offered_a_way_out():
    state = at("shop", "qty", product="tea", product_title="Tea")
    for _ in range(2):
        result = run(state, text("lots"))
        state = CustomerState(result.conversation)
    result = run(state, text("lots"))
    assert result.outcome == "way_out"
    ids = [b["reply"]["id"] for b in result.messages[-1]["interactive"]["action"]["buttons"]]
    assert ids == [RETRY_ID, RESTART_ID, CANCEL_ID]


def test_way_out_buttons_retry_restart_and_cancel():
    state = at("shop", "qty", product="tea", product_title="Tea", _invalid=3)
    retry = run(state, tap(RETRY_ID))
    assert bodies(retry) == ["How many Tea?"] and "_invalid" not in retry.conversation.context
    restart = run(state, tap(RESTART_ID))
    assert restart.conversation.step == "initial" and bodies(restart) == ["Pick one"]
    cancel = run(state, tap(CANCEL_ID))
    assert cancel.conversation is None and cancel.outcome == "cancelled"


def test_a_tap_on_an_older_menu_is_answered_with_a_note_and_the_current_step():
    result = run(at("shop", "ok", product="tea", product_title="Tea", qty=2), tap("cake", "Cake"))
    assert result.outcome == "stale"
    assert bodies(result) == [CONFIG.texts.stale, "2 x Tea?"]
    assert result.conversation.step == "ok"


@pytest.mark.parametrize(
    ("kind", "mtype", "word"), [("media", "image", "images"), ("location", "location", "locations")]
)
def test_non_text_during_a_step_names_what_is_expected(kind, mtype, word):
    result = run(at("shop", "qty", product="tea", product_title="Tea"), other(kind, mtype))
    assert word in bodies(result)[0] and "whole number" in bodies(result)[0]
    menu = run(at("shop", "initial"), other(kind, mtype))
    assert "one of the options" in bodies(menu)[0] and bodies(menu)[1] == "Pick one"


def test_reactions_are_never_answered_and_change_nothing():
    state = at("shop", "qty", product="tea")
    result = run(state, other("reaction", "reaction"))
    assert result.messages == [] and result.conversation == state.conversation


def test_yes_no_branches_by_answer():
    assert run(at("survey", "initial"), text("nope")).conversation.step == "why"
    done = run(at("survey", "initial"), text("yes"))
    assert done.outcome == "completed" and bodies(done) == ["Thanks!"]


# --- precedence ---------------------------------------------------------------------


def test_cancel_word_ends_the_conversation_with_a_confirmation():
    result = run(at("shop", "qty"), text("Cancel"))
    assert result.conversation is None
    assert bodies(result) == [CONFIG.texts.cancelled]
    assert Ended("shop", "qty", "cancelled") in result.effects


def test_exact_keyword_restarts_but_a_keyword_inside_an_answer_does_not():
    restarted = run(at("shop", "qty", product="tea"), text("menu"))
    assert restarted.outcome == "restarted" and restarted.conversation.template == "main_menu"
    answer = run(at("survey", "why"), text("the menu was too long"))
    assert answer.outcome == "completed"


def test_the_routes_are_tried_in_this_order():
    assert [r.name for r in ROUTES] == [
        "expired",
        "reaction",
        "event",
        "flow gone",
        "opt-out/opt-in word",
        "handed off",
        "edit",
        "handoff word",
        "way-out button",
        "order",
        "flow reply",
        "no conversation",
        "cancel word",
        "exact keyword",
        "answer",
    ]


def test_a_cancel_word_wins_over_a_keyword_that_is_the_same_word():
    config = EngineConfig(cancel_words=("menu",))
    result = handle(TEMPLATES, at("shop", "qty", product="tea"), text("menu"), NOW, config, Actions())
    assert result.outcome == "cancelled" and result.conversation is None
    assert Ended("shop", "qty", "cancelled") in result.effects
    assert not any(isinstance(e, Ended) and e.reason == "restarted" for e in result.effects)


def test_expiry_comes_before_a_reaction_and_the_reaction_stays_unanswered():
    stale = Conversation("shop", "qty", {}, NOW - timedelta(seconds=1), NOW - timedelta(days=1))
    result = run(CustomerState(stale), other("reaction", "reaction"))
    assert result.outcome == "reaction" and result.conversation is None and result.messages == []
    assert result.effects == [Ended("shop", "qty", "expired")]


def test_a_reaction_in_a_deleted_template_is_not_answered_even_to_say_it_is_gone():
    state = at("gone", "initial")
    result = run(state, other("reaction", "reaction"))
    assert result.outcome == "reaction" and result.messages == [] and result.effects == []
    assert result.conversation == state.conversation


def test_a_way_out_button_in_a_deleted_template_says_so_then_counts_as_no_conversation():
    result = run(at("gone", "qty"), tap(CANCEL_ID, "Cancel"))
    assert result.effects[0] == Ended("gone", "qty", "template_gone")
    assert bodies(result) == [CONFIG.texts.template_gone, CONFIG.fallback_text]
    assert result.outcome == "fallback" and result.conversation is None


def test_a_way_out_button_without_a_conversation_is_like_any_other_message():
    result = run(CustomerState(None), tap(RESTART_ID, "Start over"))
    assert result.outcome == "fallback" and bodies(result) == [CONFIG.fallback_text]


def test_a_cancel_word_in_an_expired_conversation_is_not_a_cancel():
    stale = Conversation("shop", "qty", {}, NOW - timedelta(seconds=1), NOW - timedelta(days=1))
    result = run(CustomerState(stale), text("cancel"))
    assert result.outcome == "fallback"
    assert result.effects[0] == Ended("shop", "qty", "expired")
    assert not any(isinstance(e, Ended) and e.reason == "cancelled" for e in result.effects)


# --- moving on ----------------------------------------------------------------------


def test_option_leading_to_another_template_switches_flow_via_alias():
    result = run(at("main_menu", "initial"), tap("shop", "Shop"))
    assert result.outcome == "switched"
    assert result.conversation.template == "shop" and result.conversation.context == {}
    assert bodies(result) == ["Pick one"]


def test_completion_runs_the_action_sends_the_message_and_stores_a_submission():
    actions = Actions()
    result = run(at("shop", "ok", product="tea", product_title="Tea", qty=2), tap("yes", "Yes"), actions)
    assert result.outcome == "completed" and result.conversation is None
    assert bodies(result) == ["Order ORD-000042 placed"]
    submit = next(e for e in result.effects if isinstance(e, Submit))
    assert submit.answers["order_id"] == "ORD-000042" and submit.answers["qty"] == 2
    assert actions.calls[0][0] == "place_order"


def test_failed_action_apologises_and_leaves_the_customer_on_the_previous_step():
    state = at("shop", "ok", product="tea", product_title="Tea", qty=2)
    result = run(state, tap("yes", "Yes"), Actions(fail=True))
    assert result.outcome == "action_failed"
    assert result.conversation.step == "ok" and "yes" not in result.conversation.context.values()
    assert bodies(result) == [CONFIG.texts.action_failed, "2 x Tea?"]
    assert not any(isinstance(e, Submit) for e in result.effects)


def test_conversation_in_a_deleted_template_starts_afresh():
    result = run(at("gone", "initial"), text("hi"))
    assert result.conversation.template == "main_menu"
    assert Ended("gone", "initial", "template_gone") in result.effects


def test_user_text_is_never_interpreted_as_a_placeholder():
    result = run(at("survey", "why"), text("{order_id} {0.__class__} %s"))
    assert result.outcome == "completed"
    reply = run(at("shop", "initial"), text("{product_title}"))
    assert bodies(reply)[0] == CONFIG.texts.choose
