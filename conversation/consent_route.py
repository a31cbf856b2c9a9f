"""The step machine's opt-out/opt-in route: a message that is exactly one of those words.

It comes before every route that could answer the message otherwise (a handed-off
customer, a live step, a keyword), so "stop" always works: any live conversation ends,
one confirmation goes out, and the turn marks the contact (``ConsentChanged``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from conversation.consent import consent_change
from conversation.events import InboundEvent
from conversation.state import (
    ConsentChanged,
    Conversation,
    Effect,
    EndReason,
    EngineConfig,
    Outcome,
    StepResult,
)
from conversation.texts import load_catalogues

if TYPE_CHECKING:
    from settings import Settings


class Turn(Protocol):
    """What this route uses of the engine's run of one message."""

    event: InboundEvent
    config: EngineConfig
    conv: Conversation | None
    effects: list[Effect]

    def say(self, body: str) -> None: ...

    def end(self, conv: Conversation, reason: EndReason) -> None: ...

    def result(self, conversation: Conversation | None, outcome: Outcome) -> StepResult: ...


def asked(turn: Turn) -> str | None:
    """``opt_out`` or ``opt_in`` when the message is exactly one of those words, else None."""
    if turn.event.kind != "text":
        return None
    return consent_change(turn.event.text, turn.config.opt_out_words, turn.config.opt_in_words)


def is_consent_word(turn: Turn) -> bool:
    return asked(turn) is not None


def change_consent(turn: Turn) -> StepResult:
    change = asked(turn)
    if turn.conv is not None:  # whatever they were doing is over: they asked us to stop writing first
        turn.end(turn.conv, EndReason.CANCELLED)
    opted_out = change == "opt_out"
    turn.say(turn.config.opted_out_text if opted_out else turn.config.opted_in_text)
    turn.effects.append(ConsentChanged("opt_out") if opted_out else ConsentChanged("opt_in"))
    return turn.result(None, Outcome.OPTED_OUT if opted_out else Outcome.OPTED_IN)


@lru_cache(maxsize=8)
def confirmations(language: str, opt_out_words: tuple[str, ...], opt_in_words: tuple[str, ...]) -> dict[str, str]:
    """The two confirmations in ``language`` (the shipped texts catalogue), each naming the
    first word of the other list: what to send to undo it. Loaded once per process."""
    texts = load_catalogues(language).default
    values = {"opt_in_word": next(iter(opt_in_words), ""), "opt_out_word": next(iter(opt_out_words), "")}
    return {"opted_out_text": texts.text("opted_out", **values), "opted_in_text": texts.text("opted_in", **values)}


def engine_settings(settings: Settings) -> dict[str, Any]:
    """The ``EngineConfig`` fields of this route, from the deployment's settings."""
    words = {"opt_out_words": settings.opt_out_words, "opt_in_words": settings.opt_in_words}
    return {**words, **confirmations(settings.default_language, settings.opt_out_words, settings.opt_in_words)}
