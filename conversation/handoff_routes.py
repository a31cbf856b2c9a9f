"""The step machine's part of people in the loop: the paused state and asking for a person.

``engine.py`` lists these in its ``ROUTES`` table, and ``steps.py`` calls ``hand_off_at``
when a customer enters a ``handoff: true`` step. Like the engine they only describe what happens (replies,
effects, an ``Outcome``); the turn writer opens the handoff and keeps the waiting messages.
"""

from __future__ import annotations

from typing import Protocol

from conversation.events import InboundEvent
from conversation.state import (
    Conversation,
    CustomerState,
    Effect,
    Ended,
    EndReason,
    EngineConfig,
    HandOff,
    Outcome,
    StepResult,
)
from templates.normalize import normalize


class Turn(Protocol):
    """What these routes use of the engine's run of one message (``steps.Run``, which
    imports this module, hence a protocol rather than the class)."""

    state: CustomerState
    event: InboundEvent
    config: EngineConfig
    conv: Conversation | None
    effects: list[Effect]

    def say(self, body: str) -> None: ...

    def end(self, conv: Conversation, reason: EndReason) -> None: ...

    def result(self, conversation: Conversation | None, outcome: Outcome) -> StepResult: ...


def handed_off(run: Turn) -> bool:
    return run.state.handed_off


def keep_for_person(run: Turn) -> StepResult:
    # No flow reply, no fallback, no keyword: the person answers; the caller counts it as waiting.
    return run.result(run.conv, Outcome.WAITING)


def handoff_word(run: Turn) -> bool:
    words = {normalize(w) for w in run.config.handoff_words}
    return run.event.kind == "text" and normalize(run.event.text or "") in words


def hand_to_person(run: Turn) -> StepResult:
    """The global handoff word: whatever flow the customer was in ends, a person takes over."""
    if run.conv is not None:
        run.end(run.conv, EndReason.HANDED_OFF)
    run.say(run.config.texts.handed_off)
    run.effects.append(HandOff())
    return run.result(None, Outcome.HANDED_OFF)


def hand_off_at(run: Turn, template: str, step: str) -> StepResult:
    """The customer entered ``step``, a handoff step (its prompt is already queued)."""
    run.effects.append(Ended(template, step, EndReason.HANDED_OFF))
    run.effects.append(HandOff(template, step))
    return run.result(None, Outcome.HANDED_OFF)
