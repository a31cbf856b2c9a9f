"""The step engine: (templates, customer state, inbound event, clock) → (state, replies, effects).

No database, Flask or Celery here. Server-side actions are the one door to the outside,
and they come in as an ``ActionRunner`` the caller supplies; everything else is data.

Which rule answers a message is the table ``ROUTES``, read top to bottom: the first
route whose rule holds handles the message. A route that ends the live conversation
(expired, flow gone) routes the message again, now with no conversation. The moves a
route makes through a template (start, answer, advance) are ``steps.py``; the routes of
the kinds that are not plain answers (events, edits, orders, Flow replies) are
``kind_routes.py``, which documents their rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from conversation import consent_route, handoff_routes
from conversation.events import InboundEvent
from conversation.kind_routes import (
    edit_or_record,
    is_edit,
    is_event,
    is_flow_reply,
    is_order,
    record_event,
    take_flow_reply,
    take_order,
)
from conversation.state import (
    CANCEL_ID,
    RESTART_ID,
    ActionRunner,
    Conversation,
    CustomerState,
    EndReason,
    EngineConfig,
    FallbackSent,
    Outcome,
    StepResult,
    TemplateSet,
)
from conversation.steps import INVALID_KEY, Run, answer, send_step, start
from conversation.voice import conversation_language
from templates.normalize import normalize
from templates.schema import RESERVED_PREFIX, TemplateDef

log = logging.getLogger(__name__)


def handle(
    templates: TemplateSet,
    state: CustomerState,
    event: InboundEvent,
    now: datetime,
    config: EngineConfig,
    actions: ActionRunner,
) -> StepResult:
    """Advance one customer by one inbound message. Never raises for customer input."""
    conv = state.conversation
    language = conv.language if conv is not None else state.language
    return _route(Run(templates, state, event, now, config, actions, conv=conv, language=language))


# --- rules: facts about the message and the live conversation -----------------------


def _expired(run: Run) -> bool:
    return run.conv is not None and run.conv.expires_at <= run.now


def _reaction(run: Run) -> bool:
    return run.event.kind == "reaction"


def _flow_gone(run: Run) -> bool:
    template = run.template
    return run.conv is not None and (template is None or run.conv.step not in template.steps)


def _way_out_button(run: Run) -> bool:
    return (
        run.conv is not None and run.event.kind == "choice" and (run.event.choice_id or "").startswith(RESERVED_PREFIX)
    )


def _no_conversation(run: Run) -> bool:
    return run.conv is None


def _cancel_word(run: Run) -> bool:
    return run.event.kind == "text" and normalize(run.event.text or "") in run.voice.cancel_words


def _exact_keyword(run: Run) -> bool:
    return run.keyword is not None


def _anything(run: Run) -> bool:
    return True


# --- handlers: one per route --------------------------------------------------------


def _live(run: Run) -> tuple[Conversation, TemplateDef]:
    """The live conversation and its template; routes after "flow gone" always have both."""
    template = run.template
    assert run.conv is not None and template is not None
    return run.conv, template


def _end_expired(run: Run) -> StepResult:
    assert run.conv is not None
    run.end(run.conv, EndReason.EXPIRED)
    return _route(run)


def _record_reaction(run: Run) -> StepResult:
    return run.result(run.conv, Outcome.REACTION)


def _end_gone_flow(run: Run) -> StepResult:
    # The flow was deleted or changed under the customer: start afresh, say why.
    assert run.conv is not None
    run.end(run.conv, EndReason.TEMPLATE_GONE)
    run.say(run.texts.template_gone)
    return _route(run)


def _way_out_choice(run: Run) -> StepResult:
    conv, template = _live(run)
    if run.event.choice_id == CANCEL_ID:
        return _cancel(run)
    if run.event.choice_id == RESTART_ID:
        run.end(conv, EndReason.RESTARTED)
        return start(run, conv.template, Outcome.RESTARTED)
    ctx = {k: v for k, v in conv.context.items() if k != INVALID_KEY}
    conv = replace(conv, context=ctx, last_interaction=run.now, expires_at=run.expiry(template))
    send_step(run, template, conv.step, ctx)
    return run.result(conv, Outcome.ADVANCED)


def _start_or_fall_back(run: Run) -> StepResult:
    event = run.event
    candidates = [event.text or ""]
    if event.kind == "choice" and event.choice_id:
        candidates.append(event.choice_id)
    for text in candidates:
        match = run.templates.keywords.search_match(text)
        if match is not None:
            run.language = conversation_language(run.config, match.language)
            return start(run, match.template, Outcome.STARTED)
    last = run.state.last_fallback_at
    if last is None or run.now - last >= run.config.fallback_period:
        run.say(run.voice.fallback)
        run.effects.append(FallbackSent())
        return run.result(None, Outcome.FALLBACK)
    return run.result(None, Outcome.IGNORED)


def _cancel(run: Run) -> StepResult:
    conv, _ = _live(run)
    run.end(conv, EndReason.CANCELLED)
    run.say(run.texts.cancelled)
    return run.result(None, Outcome.CANCELLED)


def _restart(run: Run) -> StepResult:
    conv, _ = _live(run)
    assert run.keyword is not None
    run.end(conv, EndReason.RESTARTED)
    run.language = conversation_language(run.config, run.keyword.language)  # a keyword sets the language
    return start(run, run.keyword.template, Outcome.RESTARTED)


def _answer_step(run: Run) -> StepResult:
    conv, template = _live(run)
    touched = replace(conv, last_interaction=run.now, expires_at=run.expiry(template))
    return answer(run, template, touched)


@dataclass(frozen=True)
class Route:
    name: str
    rule: Callable[[Run], bool]
    handler: Callable[[Run], StepResult]


# Precedence for a customer message, first match wins.
ROUTES: tuple[Route, ...] = (
    Route("expired", _expired, _end_expired),  # time first: an expired conversation is over
    Route("reaction", _reaction, _record_reaction),  # recorded by the caller, never answered
    Route("event", is_event, record_event),  # the kinds table's events: recorded, never answered
    Route("flow gone", _flow_gone, _end_gone_flow),
    Route("opt-out/opt-in word", consent_route.is_consent_word, consent_route.change_consent),  # even handed off
    Route("handed off", handoff_routes.handed_off, handoff_routes.keep_for_person),  # the bot is paused
    Route(
        "edit", is_edit, edit_or_record
    ),  # re-answers only the latest typed answer (not while a person has the customer)
    Route("handoff word", handoff_routes.handoff_word, handoff_routes.hand_to_person),
    Route("way-out button", _way_out_button, _way_out_choice),  # the engine's own parley:* ids
    Route("order", is_order, take_order),  # a catalog cart: the order flow, else stored
    Route("flow reply", is_flow_reply, take_flow_reply),  # a WhatsApp Flow's answers
    Route("no conversation", _no_conversation, _start_or_fall_back),  # a keyword anywhere, else fallback
    Route("cancel word", _cancel_word, _cancel),
    Route("exact keyword", _exact_keyword, _restart),  # a keyword inside an answer is an answer
    Route("answer", _anything, _answer_step),
)


def _route(run: Run) -> StepResult:
    route = next(r for r in ROUTES if r.rule(run))  # the last route takes anything
    return route.handler(run)
