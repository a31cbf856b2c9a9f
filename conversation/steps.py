"""Walking a customer through one template: the run of one message and the moves it makes.

``engine.py`` decides which route answers a message; the routes move the customer with
these: start a template, send a step, take an answer, refuse one, advance to a target.
Pure like the engine: no database, Flask or Celery.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from conversation import handoff_routes
from conversation.content import interactive, step_messages, text_message, way_out_message
from conversation.events import InboundEvent
from conversation.keywords import Match
from conversation.state import (
    ActionCall,
    ActionRunner,
    Conversation,
    CustomerState,
    Effect,
    Ended,
    EndReason,
    EngineConfig,
    Entered,
    Outcome,
    StepResult,
    Submit,
    TemplateSet,
    Texts,
)
from conversation.validation import check
from conversation.voice import Voice, chosen_language, voice
from templates.normalize import normalize
from templates.placeholders import render
from templates.schema import INITIAL, Option, Step, TemplateDef

log = logging.getLogger(__name__)

INVALID_KEY = "_invalid"  # context keys starting with "_" are bookkeeping, never submitted
# The customer's latest accepted answer when it was typed into an input step: the message
# and the step. An edit of exactly that message answers the step again (engine.py).
ANSWERED_KEY = "_answered"


@dataclass
class Run:
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


def start(run: Run, name: str, outcome: Outcome, context: dict[str, Any] | None = None) -> StepResult:
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


def send_step(run: Run, template: TemplateDef, name: str, context: Mapping[str, Any]) -> None:
    run.messages.extend(step_messages(template, name, run.values(context)))


def answer(run: Run, template: TemplateDef, conv: Conversation) -> StepResult:
    step = template.steps[conv.step]
    options = template.step_options(conv.step)
    event = run.event
    if event.kind not in {"text", "choice"}:
        what, wanted = run.voice.media_name(event.message_type), run.voice.expected(step.validation, bool(options))
        run.say(render(run.texts.media, {"what": what, "expected": wanted}))
        if options:
            send_step(run, template, conv.step, conv.context)
        return run.result(conv, Outcome.INVALID)

    if options:
        chosen = pick(options, event)
        if chosen is None and event.kind == "choice":
            run.say(run.texts.stale)
            send_step(run, template, conv.step, conv.context)
            return run.result(conv, Outcome.STALE)
        if chosen is None:
            return invalid(run, template, conv, run.texts.choose, resend=True)
        key = step.key(conv.step)
        answers = {key: chosen.id, f"{key}_title": chosen.title}
        target = (step.next_steps or {}).get(chosen.id) or step.next_step
        return advance(run, template, conv, answers, target)

    if event.kind == "choice":  # a tap on an old menu while we wait for typed input
        run.say(run.texts.stale)
        send_step(run, template, conv.step, conv.context)
        return run.result(conv, Outcome.STALE)
    checked = check(event.text or "", step.validation, run.voice.catalogue)
    if not checked.ok:
        error = render(step.error, run.values(conv.context)) if step.error else checked.reason
        return invalid(run, template, conv, error, resend=False)
    target = step.next_step
    if step.validation is not None and step.validation.type == "yes_no" and step.next_steps:
        target = step.next_steps.get(checked.value) or target
    answered = {ANSWERED_KEY: {"wamid": event.wamid, "step": conv.step}}
    return advance(run, template, conv, {step.key(conv.step): checked.value} | answered, target)


def pick(options: list[Option], event: InboundEvent) -> Option | None:
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


def invalid(run: Run, template: TemplateDef, conv: Conversation, error: str, resend: bool) -> StepResult:
    count = int(conv.context.get(INVALID_KEY, 0)) + 1
    conv = replace(conv, context={**conv.context, INVALID_KEY: count})
    if count >= run.config.max_invalid_answers:
        run.say(error)
        run.messages.append(way_out_message(run.texts))
        return run.result(conv, Outcome.WAY_OUT)
    run.say(error)
    if resend:
        send_step(run, template, conv.step, conv.context)
    return run.result(conv, Outcome.INVALID)


def advance(
    run: Run, template: TemplateDef, conv: Conversation, answers: dict[str, Any], target: str | None
) -> StepResult:
    context = {k: v for k, v in conv.context.items() if k not in (INVALID_KEY, ANSWERED_KEY)} | answers
    chosen = chosen_language(answers)
    if chosen is not None:  # a step that asks the customer's language: the rest is in it
        run.language, conv = chosen, replace(conv, language=chosen)
        template = run.templates.get(template.template_name, chosen) or template
    if target is None:  # the linter refuses such flows; stay put rather than strand anyone
        log.warning("step %s of %s has no transition", conv.step, template.template_name)
        send_step(run, template, conv.step, conv.context)
        return run.result(conv, Outcome.INVALID)
    if target not in template.steps:
        run.effects.append(Ended(template.template_name, conv.step, EndReason.SWITCHED))
        return start(run, target, Outcome.SWITCHED)

    step: Step = template.steps[target]
    if step.action is not None:
        call = ActionCall(template.template_name, target, run.event.user.key, dict(context), run.language)
        try:
            produced = run.actions.run(step.action, call)
        except Exception as exc:  # an action is outside code; the customer must not be stranded
            log.warning("action for step %s of %s failed: %s", target, template.template_name, exc)
            run.say(run.texts.action_failed)
            send_step(run, template, conv.step, conv.context)
            return run.result(conv, Outcome.ACTION_FAILED)
        context = context | dict(produced)

    send_step(run, template, target, context)
    run.effects.append(Entered(template.template_name, target))
    if step.handoff:
        return handoff_routes.hand_off_at(run, template.template_name, target)
    if step.end_conversation:
        answers_out = {k: v for k, v in context.items() if not k.startswith("_")}
        run.effects.append(Submit(template.template_name, answers_out, run.language))
        run.effects.append(Ended(template.template_name, target, EndReason.COMPLETED))
        return run.result(None, Outcome.COMPLETED)
    return run.result(replace(conv, step=target, context=context), Outcome.ADVANCED)
