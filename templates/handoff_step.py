"""The handoff step kind: ``handoff: true`` sends its prompt, then hands the customer to a person.

Nothing follows such a step in the flow (a person takes over, and after release the customer
starts afresh), so like a step that ends the conversation it needs no next step and may
have none, nor anything that waits for an answer. ``lint.py`` asks ``handoff_errors`` about
a handoff step instead of applying its next-step rules, and treats the step as a leaf.
"""

from __future__ import annotations

from collections.abc import Sequence

from templates.schema import INITIAL, Step

FIELD = "handoff"
# What a handoff step may not carry: each would make the bot wait for, or act on, an answer.
NOT_ALLOWED = ("next_step", "next_steps", "validation", "error", "end_conversation")


def handoff_errors(step_name: str, step: Step, options: Sequence[str]) -> list[tuple[str, str]]:
    """(field, message) for each rule a handoff step breaks; ``options`` are the step's option ids."""
    errors: list[tuple[str, str]] = []
    if step_name == INITIAL:
        message = "handoff: not allowed on initial (its entry message's options would go unanswered); hand off on a later step"
        errors.append((FIELD, message))
    for field in NOT_ALLOWED:
        value = getattr(step, field)
        if value not in (None, False, {}):
            errors.append((field, f"{field}: not allowed on a handoff step; a person takes over there"))
    if options:
        message = "message: offers options on a handoff step; the bot is paused there and nobody would answer them"
        errors.append(("message", message))
    if step.prompt is None and step.message is None:
        errors.append(("prompt", "prompt missing: the customer is handed to a person without a word"))
    return errors
