"""The step engine: (templates, customer state, inbound event, clock) → (state, replies, effects).

No database, Flask or Celery here. Server-side actions are the one door to the outside,
and they come in as an ``ActionRunner`` the caller supplies; everything else is data.

Which rule answers a message is the table ``ROUTES``, read top to bottom: the first
route whose rule holds handles the message. A route that ends the live conversation
(expired, flow gone) routes the message again, now with no conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from conversation.content import interactive, step_messages, text_message, way_out_message
from conversation.events import InboundEvent
from conversation.keywords import Match
from conversation.state import (
    CANCEL_ID,
    RESTART_ID,
    ActionCall,
    ActionRunner,
    Conversation,
    CustomerState,
    Effect,
    Ended,
    EndReason,
    EngineConfig,
    Entered,
    FallbackSent,
    Outcome,
    StepResult,
    Submit,
    TemplateSet,
    Texts,
)
from conversation.validation import check
from conversation.voice import Voice, chosen_language, conversation_language, voice
from templates.normalize import normalize
from templates.placeholders import render
from templates.schema import INITIAL, RESERVED_PREFIX, Option, Step, TemplateDef

log = logging.getLogger(__name__)

INVALID_KEY = "_invalid"  # context keys starting with "_" are bookkeeping, never submitted


@dataclass
class _Run:
    """One call of ``handle``: inputs, the live conversation and the replies collected so far."""

    templates: TemplateSet
    state: CustomerState
    event: InboundEvent
    now: datetime
    config: EngineConfig
    actions: ActionRunner
    conv: Conversation | None = None
    language: str | None = None  # the customer's: the conversation's, else their last one's
    messages: list[dict[str, Any]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    @property
    def voice(self) -> Voice:
        return voice(self.config, self.language)

    @property
    def texts(self) -> Texts:
        return self.voice.texts

    @property
    def template(self) -> TemplateDef | None:
        return self.templates.get(self.conv.template, self.conv.language) if self.conv is not None else None

    @cached_property
    def keyword(self) -> Match | None:
        """The flow and language whose keyword is exactly the text, if any (asked by rule and handler)."""
        return self.templates.keywords.exact_match(self.event.text or "") if self.event.kind == "text" else None

    def say(self, body: str) -> None:
        self.messages.append(text_message(body))

    def end(self, conv: Conversation, reason: EndReason) -> None:
        self.effects.append(Ended(conv.template, conv.step, reason))
        self.conv = None

    def values(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return {"profile_name": self.state.profile_name or self.voice.profile_name, **context}

    def result(self, conversation: Conversation | None, outcome: Outcome) -> StepResult:
        return StepResult(conversation, self.messages, self.effects, outcome, self.language)

    def expiry(self, template: TemplateDef) -> datetime:
        return self.config.expiry(template, self.now)


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
    return _route(_Run(templates, state, event, now, config, actions, conv=conv, language=language))


# --- rules: facts about the message and the live conversation -----------------------


def _expired(run: _Run) -> bool:
    return run.conv is not None and run.conv.expires_at <= run.now


def _reaction(run: _Run) -> bool:
    return run.event.kind == "reaction"


def _flow_gone(run: _Run) -> bool:
    template = run.template
    return run.conv is not None and (template is None or run.conv.step not in template.steps)


def _way_out_button(run: _Run) -> bool:
    return (
        run.conv is not None and run.event.kind == "choice" and (run.event.choice_id or "").startswith(RESERVED_PREFIX)
    )


def _no_conversation(run: _Run) -> bool:
    return run.conv is None


def _cancel_word(run: _Run) -> bool:
    return run.event.kind == "text" and normalize(run.event.text or "") in run.voice.cancel_words


def _exact_keyword(run: _Run) -> bool:
    return run.keyword is not None


def _anything(run: _Run) -> bool:
    return True


# --- handlers: one per route --------------------------------------------------------


def _live(run: _Run) -> tuple[Conversation, TemplateDef]:
    """The live conversation and its template; routes after "flow gone" always have both."""
    template = run.template
    assert run.conv is not None and template is not None
    return run.conv, template


def _end_expired(run: _Run) -> StepResult:
    assert run.conv is not None
    run.end(run.conv, EndReason.EXPIRED)
    return _route(run)


def _record_reaction(run: _Run) -> StepResult:
    return run.result(run.conv, Outcome.REACTION)


def _end_gone_flow(run: _Run) -> StepResult:
    # The flow was deleted or changed under the customer: start afresh, say why.
    assert run.conv is not None
    run.end(run.conv, EndReason.TEMPLATE_GONE)
    run.say(run.texts.template_gone)
    return _route(run)


def _way_out_choice(run: _Run) -> StepResult:
    conv, template = _live(run)
    if run.event.choice_id == CANCEL_ID:
        return _cancel(run)
    if run.event.choice_id == RESTART_ID:
        run.end(conv, EndReason.RESTARTED)
        return _start(run, conv.template, Outcome.RESTARTED)
    ctx = {k: v for k, v in conv.context.items() if k != INVALID_KEY}
    conv = replace(conv, context=ctx, last_interaction=run.now, expires_at=run.expiry(template))
    _send_step(run, template, conv.step, ctx)
    return run.result(conv, Outcome.ADVANCED)


def _start_or_fall_back(run: _Run) -> StepResult:
    event = run.event
    candidates = [event.text or ""]
    if event.kind == "choice" and event.choice_id:
        candidates.append(event.choice_id)
    for text in candidates:
        match = run.templates.keywords.search_match(text)
        if match is not None:
            run.language = conversation_language(run.config, match.language)
            return _start(run, match.template, Outcome.STARTED)
    last = run.state.last_fallback_at
    if last is None or run.now - last >= run.config.fallback_period:
        run.say(run.voice.fallback)
        run.effects.append(FallbackSent())
        return run.result(None, Outcome.FALLBACK)
    return run.result(None, Outcome.IGNORED)


def _cancel(run: _Run) -> StepResult:
    conv, _ = _live(run)
    run.end(conv, EndReason.CANCELLED)
    run.say(run.texts.cancelled)
    return run.result(None, Outcome.CANCELLED)


def _restart(run: _Run) -> StepResult:
    conv, _ = _live(run)
    assert run.keyword is not None
    run.end(conv, EndReason.RESTARTED)
    run.language = conversation_language(run.config, run.keyword.language)  # a keyword sets the language
    return _start(run, run.keyword.template, Outcome.RESTARTED)


def _answer_step(run: _Run) -> StepResult:
    conv, template = _live(run)
    touched = replace(conv, last_interaction=run.now, expires_at=run.expiry(template))
    return _answer(run, template, touched)


@dataclass(frozen=True)
class Route:
    name: str
    rule: Callable[[_Run], bool]
    handler: Callable[[_Run], StepResult]


# Precedence for a customer message, first match wins.
ROUTES: tuple[Route, ...] = (
    Route("expired", _expired, _end_expired),  # time first: an expired conversation is over
    Route("reaction", _reaction, _record_reaction),  # recorded by the caller, never answered
    Route("flow gone", _flow_gone, _end_gone_flow),
    Route("way-out button", _way_out_button, _way_out_choice),  # the engine's own parley:* ids
    Route("no conversation", _no_conversation, _start_or_fall_back),  # a keyword anywhere, else fallback
    Route("cancel word", _cancel_word, _cancel),
    Route("exact keyword", _exact_keyword, _restart),  # a keyword inside an answer is an answer
    Route("answer", _anything, _answer_step),
)


def _route(run: _Run) -> StepResult:
    route = next(r for r in ROUTES if r.rule(run))  # the last route takes anything
    return route.handler(run)


# --- moving through a template ------------------------------------------------------


def _start(run: _Run, name: str, outcome: Outcome, context: dict[str, Any] | None = None) -> StepResult:
    template = run.templates.get(name, run.language)
    if template is None:  # a keyword or switch that points nowhere; the linter prevents it
        log.warning("template %s is not available", name)
        run.say(run.texts.template_gone)
        return run.result(None, Outcome.IGNORED)
    ctx = dict(context or {})
    run.messages.append(interactive(template.entry_message(), run.values(ctx)))
    conv = Conversation(template.template_name, INITIAL, ctx, run.expiry(template), run.now, run.language)
    run.effects.append(Entered(template.template_name, INITIAL))
    return run.result(conv, outcome)


def _send_step(run: _Run, template: TemplateDef, name: str, context: Mapping[str, Any]) -> None:
    run.messages.extend(step_messages(template, name, run.values(context)))


def _answer(run: _Run, template: TemplateDef, conv: Conversation) -> StepResult:
    step = template.steps[conv.step]
    options = template.step_options(conv.step)
    event = run.event
    if event.kind not in {"text", "choice"}:
        what, wanted = run.voice.media_name(event.message_type), run.voice.expected(step.validation, bool(options))
        run.say(render(run.texts.media, {"what": what, "expected": wanted}))
        if options:
            _send_step(run, template, conv.step, conv.context)
        return run.result(conv, Outcome.INVALID)

    if options:
        chosen = _pick(options, event)
        if chosen is None and event.kind == "choice":
            run.say(run.texts.stale)
            _send_step(run, template, conv.step, conv.context)
            return run.result(conv, Outcome.STALE)
        if chosen is None:
            return _invalid(run, template, conv, run.texts.choose, resend=True)
        key = step.key(conv.step)
        answers = {key: chosen.id, f"{key}_title": chosen.title}
        target = (step.next_steps or {}).get(chosen.id) or step.next_step
        return _advance(run, template, conv, answers, target)

    if event.kind == "choice":  # a tap on an old menu while we wait for typed input
        run.say(run.texts.stale)
        _send_step(run, template, conv.step, conv.context)
        return run.result(conv, Outcome.STALE)
    checked = check(event.text or "", step.validation, run.voice.catalogue)
    if not checked.ok:
        error = render(step.error, run.values(conv.context)) if step.error else checked.reason
        return _invalid(run, template, conv, error, resend=False)
    target = step.next_step
    if step.validation is not None and step.validation.type == "yes_no" and step.next_steps:
        target = step.next_steps.get(checked.value) or target
    return _advance(run, template, conv, {step.key(conv.step): checked.value}, target)


def _pick(options: list[Option], event: InboundEvent) -> Option | None:
    if event.kind == "choice":
        return next((o for o in options if o.id == event.choice_id), None)
    said = normalize(event.text or "")
    if not said:
        return None
    if said.isdigit() and 1 <= int(said) <= len(options):
        return options[int(said) - 1]
    for option in options:
        if said in (normalize(option.id), normalize(option.title)):
            return option
    return None


def _invalid(run: _Run, template: TemplateDef, conv: Conversation, error: str, resend: bool) -> StepResult:
    count = int(conv.context.get(INVALID_KEY, 0)) + 1
    conv = replace(conv, context={**conv.context, INVALID_KEY: count})
    if count >= run.config.max_invalid_answers:
        run.say(error)
        run.messages.append(way_out_message(run.texts))
        return run.result(conv, Outcome.WAY_OUT)
    run.say(error)
    if resend:
        _send_step(run, template, conv.step, conv.context)
    return run.result(conv, Outcome.INVALID)


def _advance(
    run: _Run, template: TemplateDef, conv: Conversation, answers: dict[str, Any], target: str | None
) -> StepResult:
    context = {k: v for k, v in conv.context.items() if k != INVALID_KEY} | answers
    chosen = chosen_language(answers)
    if chosen is not None:  # a step that asks the customer's language: the rest is in it
        run.language, conv = chosen, replace(conv, language=chosen)
        template = run.templates.get(template.template_name, chosen) or template
    if target is None:  # the linter refuses such flows; stay put rather than strand anyone
        log.warning("step %s of %s has no transition", conv.step, template.template_name)
        _send_step(run, template, conv.step, conv.context)
        return run.result(conv, Outcome.INVALID)
    if target not in template.steps:
        run.effects.append(Ended(template.template_name, conv.step, EndReason.SWITCHED))
        return _start(run, target, Outcome.SWITCHED)

    step: Step = template.steps[target]
    if step.action is not None:
        call = ActionCall(template.template_name, target, run.event.user.key, dict(context), run.language)
        try:
            produced = run.actions.run(step.action, call)
        except Exception as exc:  # an action is outside code; the customer must not be stranded
            log.warning("action for step %s of %s failed: %s", target, template.template_name, exc)
            run.say(run.texts.action_failed)
            _send_step(run, template, conv.step, conv.context)
            return run.result(conv, Outcome.ACTION_FAILED)
        context = context | dict(produced)

    _send_step(run, template, target, context)
    run.effects.append(Entered(template.template_name, target))
    if step.end_conversation:
        answers_out = {k: v for k, v in context.items() if not k.startswith("_")}
        run.effects.append(Submit(template.template_name, answers_out, run.language))
        run.effects.append(Ended(template.template_name, target, EndReason.COMPLETED))
        return run.result(None, Outcome.COMPLETED)
    return run.result(replace(conv, step=target, context=context), Outcome.ADVANCED)
