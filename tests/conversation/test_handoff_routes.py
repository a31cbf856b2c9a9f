"""The step machine's handoff: entering a handoff step, the handoff word, and the paused state.

Pure engine, no database: the rules of who answers what. The service side (the handoff row,
waiting counts, events) is tests/conversation/test_handoff_turn.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conversation.engine import handle
from conversation.events import InboundEvent, UserRef
from conversation.state import (
    Conversation,
    CustomerState,
    Ended,
    EndReason,
    EngineConfig,
    Entered,
    HandOff,
    Outcome,
    StepResult,
    TemplateSet,
)
from templates.schema import TemplateDef

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
USER = UserRef(user_id=None, phone="15550001111", profile_name="Ann")
HELP = {
    "template_name": "help",
    "template_type": "button",
    "trigger_keywords": ["help", "hi"],
    "menu_structure": {
        "type": "button",
        "body": {"text": "How can we help?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "faq", "title": "FAQ"}},
                {"type": "reply", "reply": {"id": "person", "title": "A person"}},
            ]
        },
        "steps": {
            "initial": {"next_steps": {"faq": "faq", "person": "person"}},
            "faq": {"prompt": "We open at 8.", "end_conversation": True},
            "person": {"prompt": "A person will answer you here.", "handoff": True},
        },
    },
}
TEMPLATES = TemplateSet({"help": TemplateDef.model_validate(HELP)})
CONFIG = EngineConfig(handoff_words=("agent", "human"), cancel_words=("cancel",))


class NoActions:
    def run(self, action: Any, call: Any) -> dict[str, Any]:
        raise AssertionError("no action runs here")


def text(body: str) -> InboundEvent:
    return InboundEvent("wamid.1", USER, "PNID", NOW, "text", "text", text=body)


def tap(option_id: str) -> InboundEvent:
    return InboundEvent("wamid.1", USER, "PNID", NOW, "choice", "interactive", text="x", choice_id=option_id)


def run(state: CustomerState, event: InboundEvent) -> StepResult:
    return handle(TEMPLATES, state, event, NOW, CONFIG, NoActions())


def bodies(result: StepResult) -> list[str]:
    return [m["text"]["body"] if m["type"] == "text" else m["interactive"]["body"]["text"] for m in result.messages]


def at_initial() -> CustomerState:
    conv = Conversation("help", "initial", {}, NOW + timedelta(hours=1), NOW - timedelta(minutes=1))
    return CustomerState(conv)


def test_entering_a_handoff_step_sends_its_prompt_and_ends_the_flow_as_handed_off() -> None:
    result = run(at_initial(), tap("person"))
    assert bodies(result) == ["A person will answer you here."]
    assert result.outcome == Outcome.HANDED_OFF and result.conversation is None
    assert result.effects == [
        Entered("help", "person"),
        Ended("help", "person", EndReason.HANDED_OFF),
        HandOff("help", "person"),
    ]


def test_the_handoff_word_hands_off_from_anywhere_and_ends_a_live_flow() -> None:
    result = run(at_initial(), text("  Agent "))
    assert bodies(result) == [CONFIG.texts.handed_off]
    assert result.outcome == Outcome.HANDED_OFF and result.conversation is None
    assert result.effects == [Ended("help", "initial", EndReason.HANDED_OFF), HandOff()]
    idle = run(CustomerState(None), text("human"))
    assert idle.effects == [HandOff()] and bodies(idle) == [CONFIG.texts.handed_off]


def test_while_handed_off_the_bot_answers_nothing_not_even_a_keyword_or_the_fallback() -> None:
    paused = CustomerState(None, handed_off=True)
    for event in (text("anyone there?"), text("hi"), text("cancel"), text("agent"), tap("faq")):
        result = run(paused, event)
        assert (result.messages, result.effects, result.outcome) == ([], [], Outcome.WAITING), event
    media = run(paused, InboundEvent("wamid.2", USER, "PNID", NOW, "media", "image"))
    assert media.messages == [] and media.outcome == Outcome.WAITING


def test_a_reaction_while_handed_off_is_still_only_recorded() -> None:
    result = run(
        CustomerState(None, handed_off=True), InboundEvent("wamid.3", USER, "PNID", NOW, "reaction", "reaction")
    )
    assert result.outcome == Outcome.REACTION and result.messages == []


def test_after_release_the_same_words_reach_the_bot_again() -> None:
    result = run(CustomerState(None, handed_off=False), text("hi"))
    assert result.outcome == Outcome.STARTED and bodies(result) == ["How can we help?"]
