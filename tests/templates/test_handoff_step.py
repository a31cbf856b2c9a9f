"""The rules of a handoff step, as lint will report them (field, message)."""

from __future__ import annotations

from typing import Any

import pytest

from templates.handoff_step import handoff_errors
from templates.schema import Step


def fields(step_name: str = "agent", options: tuple[str, ...] = (), **step: Any) -> list[str]:
    return [field for field, _ in handoff_errors(step_name, Step(**step), options)]


def test_a_prompt_and_nothing_after_it_is_a_valid_handoff_step() -> None:
    assert fields(prompt="One moment, a person will answer you here.") == []
    assert fields(prompt="Passing you on.", action="place_order") == []  # an action may run first
    plain = {"type": "text", "body": {"text": "A person will answer you here."}}
    assert fields(message=plain) == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"next_step": "thanks"}, "next_step"),
        ({"next_steps": {"yes": "thanks"}}, "next_steps"),
        ({"validation": "email"}, "validation"),
        ({"error": "Please try again"}, "error"),
        ({"end_conversation": True}, "end_conversation"),
    ],
)
def test_nothing_that_waits_for_an_answer_is_allowed(extra: dict[str, Any], field: str) -> None:
    assert fields(prompt="A person will answer.", **extra) == [field]


def test_options_nobody_would_answer_are_refused() -> None:
    assert fields(prompt="A person will answer.", options=("faq", "main_menu")) == ["message"]


def test_a_silent_handoff_is_refused() -> None:
    errors = handoff_errors("agent", Step(), ())
    assert errors == [("prompt", "prompt missing: the customer is handed to a person without a word")]


def test_not_on_initial() -> None:
    assert fields("initial", prompt="x") == ["handoff"]
