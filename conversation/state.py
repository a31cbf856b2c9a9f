"""What the step engine takes and gives: customer state, settings, effects and outcomes.

Plain values only, so the caller can store them, log them and test against them; the
step machine that moves between them is ``engine.py``, the WhatsApp content it sends is
``content.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol

from conversation.keywords import KeywordIndex
from conversation.texts.catalogue import Catalogues
from templates.schema import ALIAS_SUFFIX, RESERVED_PREFIX, HttpAction, TemplateDef
from templates.translations import by_language

# The engine's own "way out" buttons; the schema keeps flows off this prefix.
RETRY_ID, RESTART_ID, CANCEL_ID = f"{RESERVED_PREFIX}retry", f"{RESERVED_PREFIX}restart", f"{RESERVED_PREFIX}cancel"


class Outcome(StrEnum):
    """What one inbound message did; stored on the inbound row and counted by metrics."""

    STARTED = "started"
    ADVANCED = "advanced"
    INVALID = "invalid"
    STALE = "stale"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    RESTARTED = "restarted"
    SWITCHED = "switched"
    ACTION_FAILED = "action_failed"
    FALLBACK = "fallback"
    IGNORED = "ignored"
    REACTION = "reaction"
    WAY_OUT = "way_out"
    RECORDED = "recorded"  # an event (deletion, notice, identity change ...): kept, not answered
    UNKNOWN_KIND = "unknown_kind"  # a kind parley does not know: kept, counted, not answered
    ORDER_RECEIVED = "order_received"  # a cart with no order flow: stored and acknowledged
    SUBMITTED = "submitted"  # a Flow's answers with no conversation live: kept as a submission
    HANDED_OFF = "handed_off"  # a handoff step or word: a person takes over
    WAITING = "waiting"  # a message while handed off: kept for the person, never answered
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"


class EndReason(StrEnum):
    """Why a conversation ended; stored as a conversation event, a column of the stats."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SWITCHED = "switched"
    RESTARTED = "restarted"
    TEMPLATE_GONE = "template_gone"
    HANDED_OFF = "handed_off"


@dataclass(frozen=True)
class Texts:
    """Everything the engine says on its own behalf (configurable per deployment)."""

    cancelled: str = "Okay, I've cancelled that. Send *hi* whenever you want to start again."
    choose: str = "Please choose one of the options."
    stale: str = "That option belongs to an earlier menu. Here is where we are now:"
    media: str = "Sorry, I can't read {what} here. Please send {expected}."
    action_failed: str = "Sorry, something went wrong on our side. Please try again in a moment."
    way_out: str = "It looks like this isn't working. What would you like to do?"
    retry_title: str = "Try again"
    restart_title: str = "Start over"
    cancel_title: str = "Cancel"
    template_gone: str = "Sorry, that menu is no longer available."
    order_received: str = "Thank you! We received your order {order_id}: {cart_summary}. We'll be in touch shortly."
    handed_off: str = "Okay, I'm passing you to a person from our team. They will reply here."


@dataclass(frozen=True)
class EngineConfig:
    cancel_words: tuple[str, ...] = ("cancel", "exit", "quit")
    max_invalid_answers: int = 3
    fallback_text: str = "Sorry, I didn't get that. Send *hi* to see the menu."
    fallback_period: timedelta = timedelta(hours=1)
    default_expiry: timedelta = timedelta(hours=24)
    handoff_words: tuple[str, ...] = ()
    texts: Texts = field(default_factory=Texts)
    # Notifications: the words that opt a customer out and back in, and the confirmations.
    opt_out_words: tuple[str, ...] = ("stop", "unsubscribe")
    opt_in_words: tuple[str, ...] = ("subscribe",)
    opted_out_text: str = "You won't get notifications from us any more. Send *subscribe* to get them again."
    opted_in_text: str = "You're subscribed again. Send *stop* any time to stop notifications."
    # Every language's texts (conversation/texts); None: the English above (conversation/voice.py).
    catalogues: Catalogues | None = None

    def expiry(self, template: TemplateDef, now: datetime) -> datetime:
        """When a conversation in ``template`` that moved at ``now`` expires: the flow's own hours, else the default."""
        hours = template.expiry_hours
        return now + (timedelta(hours=hours) if hours else self.default_expiry)


@dataclass(frozen=True)
class Conversation:
    """The engine's view of a live conversation."""

    template: str
    step: str
    context: dict[str, Any]
    expires_at: datetime
    last_interaction: datetime
    language: str | None = None  # the customer's language in this conversation; None: the default


@dataclass(frozen=True)
class CustomerState:
    conversation: Conversation | None
    last_fallback_at: datetime | None = None
    profile_name: str | None = None
    language: str | None = None  # of their last conversation (the contact's), for a fallback
    # An open handoff: a person has the customer, and the bot is paused for them.
    handed_off: bool = False


# Effects the caller carries out in the same transaction.
@dataclass(frozen=True)
class Submit:
    template: str
    answers: dict[str, Any]
    language: str | None = None


@dataclass(frozen=True)
class Ended:
    template: str
    step: str
    reason: EndReason


@dataclass(frozen=True)
class Entered:
    """The customer landed on ``step`` (a template's start, an advance, a loop back).

    Reported separately because the new state alone cannot show a loop to the same step
    or an entry into a step that ends the conversation; the drop-off stats count these.
    """

    template: str
    step: str


@dataclass(frozen=True)
class FallbackSent:
    pass


@dataclass(frozen=True)
class HandOff:
    """Hand the customer to a person: from a flow's handoff step, or (both None) the handoff word."""

    template: str | None = None
    step: str | None = None


@dataclass(frozen=True)
class ConsentChanged:
    """The customer opted out of notifications (``opt_out``) or back in (``opt_in``)."""

    change: Literal["opt_out", "opt_in"]


Effect = Submit | Ended | Entered | FallbackSent | HandOff | ConsentChanged


@dataclass(frozen=True)
class StepResult:
    conversation: Conversation | None
    messages: list[dict[str, Any]]
    effects: list[Effect]
    outcome: Outcome
    language: str | None = None  # the customer's after this message (the contact keeps it)


class ActionFailed(Exception):
    """An action could not produce its result; the customer stays where they were."""


@dataclass(frozen=True)
class ActionCall:
    template: str
    step: str
    user_key: str
    context: Mapping[str, Any]
    language: str | None = None  # the customer's, for what the action says


class ActionRunner(Protocol):
    def run(self, action: str | HttpAction, call: ActionCall) -> Mapping[str, Any]: ...


class TemplateSet:
    """Validated templates, each in its languages, plus the keyword index of every
    language (a keyword says which language it starts); built once per template revision."""

    def __init__(self, templates: Mapping[str, TemplateDef]) -> None:
        self.templates = dict(templates)
        self.languages = {name: by_language(t) for name, t in self.templates.items()}
        self.keywords = KeywordIndex(
            (kw, name, flow.priority, language)
            for name, flows in self.languages.items()
            if self.templates[name].is_active
            for language, flow in flows.items()
            for kw in flow.trigger_keywords
        )
        # The flow a catalog cart starts: the active one with ``trigger: order`` (priority, then name).
        ordered = sorted(
            (t for t in self.templates.values() if t.is_active and t.trigger == "order"),
            key=lambda t: (-t.priority, t.template_name),
        )
        self.order_flow: str | None = ordered[0].template_name if ordered else None

    def get(self, name: str, language: str | None = None) -> TemplateDef | None:
        """Template ``name`` (or its ``_flow`` alias) in ``language`` when it has it, else in its own."""
        if name not in self.templates and name.endswith(ALIAS_SUFFIX):
            name = name[: -len(ALIAS_SUFFIX)]
        template = self.templates.get(name)
        if template is None or not template.is_active:
            return None
        localized = self.languages[name].get(language) if language else None
        return localized or template
