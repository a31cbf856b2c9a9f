"""The step engine: (templates, customer state, inbound event, clock) → (state, replies, effects).

No database, Flask or Celery here. Server-side actions are the one door to the outside,
and they come in as an ``ActionRunner`` the caller supplies; everything else is data.

Precedence for a customer message (DESIGN.md, issue "Conversation core"):
1. reactions are recorded by the caller and never answered;
2. the engine's own "way out" buttons (``parley:*`` ids);
3. no live conversation: a trigger keyword anywhere in the text starts its template,
   else the fallback text (at most once per fallback period);
4. live conversation: a cancel word ends it; a message that is exactly a keyword
   restarts at that template; anything else answers the current step.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from conversation.events import InboundEvent
from conversation.keywords import KeywordIndex
from conversation.validation import check, expected
from templates.normalize import normalize
from templates.placeholders import render
from templates.schema import (
    MAX_BUTTON_TITLE,
    MAX_FOOTER,
    MAX_HEADER,
    MAX_INTERACTIVE_BODY,
    MAX_LIST_BUTTON,
    MAX_ROW_DESCRIPTION,
    MAX_ROW_TITLE,
    MAX_SECTION_TITLE,
    HttpAction,
    Option,
    Step,
    TemplateDef,
)

log = logging.getLogger(__name__)

INITIAL = "initial"
RETRY_ID, RESTART_ID, CANCEL_ID = "parley:retry", "parley:restart", "parley:cancel"
INVALID_KEY = "_invalid"  # context keys starting with "_" are bookkeeping, never submitted
ALIAS_SUFFIX = "_flow"
MEDIA_NAMES = {
    "image": "images",
    "audio": "voice messages",
    "video": "videos",
    "document": "documents",
    "sticker": "stickers",
    "location": "locations",
    "contacts": "contact cards",
}


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


@dataclass(frozen=True)
class EngineConfig:
    cancel_words: tuple[str, ...] = ("cancel", "exit", "quit")
    max_invalid_answers: int = 3
    fallback_text: str = "Sorry, I didn't get that. Send *hi* to see the menu."
    fallback_period: timedelta = timedelta(hours=1)
    default_expiry: timedelta = timedelta(hours=24)
    texts: Texts = field(default_factory=Texts)


@dataclass(frozen=True)
class Conversation:
    """The engine's view of a live conversation."""

    template: str
    step: str
    context: dict[str, Any]
    expires_at: datetime
    last_interaction: datetime


@dataclass(frozen=True)
class CustomerState:
    conversation: Conversation | None
    last_fallback_at: datetime | None = None
    profile_name: str | None = None


# Effects the caller carries out in the same transaction.
@dataclass(frozen=True)
class Submit:
    template: str
    answers: dict[str, Any]


@dataclass(frozen=True)
class Ended:
    template: str
    step: str
    reason: str  # completed | cancelled | switched | restarted | expired | template_gone


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


Effect = Submit | Ended | Entered | FallbackSent


@dataclass(frozen=True)
class StepResult:
    conversation: Conversation | None
    messages: list[dict[str, Any]]
    effects: list[Effect]
    outcome: str  # started | advanced | invalid | stale | completed | cancelled | restarted |
    #             switched | action_failed | fallback | ignored | reaction | way_out


class ActionFailed(Exception):
    """An action could not produce its result; the customer stays where they were."""


@dataclass(frozen=True)
class ActionCall:
    template: str
    step: str
    user_key: str
    context: Mapping[str, Any]


class ActionRunner(Protocol):
    def run(self, action: str | HttpAction, call: ActionCall) -> Mapping[str, Any]: ...


class TemplateSet:
    """Validated templates plus their keyword index; built once per template revision."""

    def __init__(self, templates: Mapping[str, TemplateDef]) -> None:
        self.templates = dict(templates)
        self.keywords = KeywordIndex(
            (kw, t.template_name, t.priority)
            for t in self.templates.values()
            if t.is_active
            for kw in t.trigger_keywords
        )

    def get(self, name: str) -> TemplateDef | None:
        template = self.templates.get(name)
        if template is None and name.endswith(ALIAS_SUFFIX):
            template = self.templates.get(name[: -len(ALIAS_SUFFIX)])
        return template if template is not None and template.is_active else None


# --- WhatsApp content -------------------------------------------------------------


def text_message(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body[:4096], "preview_url": False}}


def _render_tree(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        return render(node, values)
    if isinstance(node, dict):
        return {k: (v if k in {"id", "type"} else _render_tree(v, values)) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_tree(v, values) for v in node]
    return node


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clamp(message: dict[str, Any]) -> dict[str, Any]:
    """Keep rendered fields within Meta's limits: a long placeholder value (a customer's
    name in a button title) must shorten the text, not get the whole message refused."""
    for part, limit in (("header", MAX_HEADER), ("footer", MAX_FOOTER), ("body", MAX_INTERACTIVE_BODY)):
        if isinstance(message.get(part), dict) and isinstance(message[part].get("text"), str):
            message[part]["text"] = _clip(message[part]["text"], limit)
    action = message.get("action") or {}
    for button in action.get("buttons", []):
        button["reply"]["title"] = _clip(button["reply"]["title"], MAX_BUTTON_TITLE)
    if isinstance(action.get("button"), str):
        action["button"] = _clip(action["button"], MAX_LIST_BUTTON)
    for section in action.get("sections", []):
        section["title"] = _clip(section["title"], MAX_SECTION_TITLE)
        for row in section["rows"]:
            row["title"] = _clip(row["title"], MAX_ROW_TITLE)
            if isinstance(row.get("description"), str):
                row["description"] = _clip(row["description"], MAX_ROW_DESCRIPTION)
    return message


def interactive(message: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A flow message (button/list/text shape) as WhatsApp content, placeholders filled."""
    filled = _render_tree(message, values)
    if filled["type"] == "text":
        return text_message(filled["body"]["text"])
    return {"type": "interactive", "interactive": _clamp(filled)}


# --- the engine ---------------------------------------------------------------------


@dataclass
class _Run:
    """One call of ``handle``: inputs and the replies collected so far."""

    templates: TemplateSet
    state: CustomerState
    event: InboundEvent
    now: datetime
    config: EngineConfig
    actions: ActionRunner
    messages: list[dict[str, Any]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    @property
    def texts(self) -> Texts:
        return self.config.texts

    def say(self, body: str) -> None:
        self.messages.append(text_message(body))

    def values(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return {"profile_name": self.state.profile_name or "there", **context}

    def result(self, conversation: Conversation | None, outcome: str) -> StepResult:
        return StepResult(conversation, self.messages, self.effects, outcome)

    def expiry(self, template: TemplateDef) -> datetime:
        hours = template.expiry_hours
        return self.now + (timedelta(hours=hours) if hours else self.config.default_expiry)


def handle(
    templates: TemplateSet,
    state: CustomerState,
    event: InboundEvent,
    now: datetime,
    config: EngineConfig,
    actions: ActionRunner,
) -> StepResult:
    """Advance one customer by one inbound message. Never raises for customer input."""
    run = _Run(templates, state, event, now, config, actions)
    conv = state.conversation
    if conv is not None and conv.expires_at <= now:
        run.effects.append(Ended(conv.template, conv.step, "expired"))
        conv = None
    if event.kind == "reaction":
        return run.result(conv, "reaction")

    template = templates.get(conv.template) if conv else None
    if conv is not None and (template is None or conv.step not in template.steps):
        # The flow was deleted or changed under the customer: start afresh, say why.
        run.effects.append(Ended(conv.template, conv.step, "template_gone"))
        run.say(run.texts.template_gone)
        conv = None

    if event.kind == "choice" and (event.choice_id or "").startswith("parley:"):
        return _way_out_choice(run, conv)
    if conv is None or template is None:
        return _no_conversation(run)

    text = event.text or ""
    if event.kind == "text" and normalize(text) in {normalize(w) for w in config.cancel_words}:
        return _cancel(run, conv)
    if event.kind == "text":
        restart = templates.keywords.exact(text)
        if restart is not None:
            run.effects.append(Ended(conv.template, conv.step, "restarted"))
            return _start(run, restart, "restarted")
    touched = replace(conv, last_interaction=now, expires_at=run.expiry(template))
    return _answer(run, template, touched)


def _no_conversation(run: _Run) -> StepResult:
    event = run.event
    candidates = [event.text or ""]
    if event.kind == "choice" and event.choice_id:
        candidates.append(event.choice_id)
    for text in candidates:
        name = run.templates.keywords.search(text)
        if name is not None:
            return _start(run, name, "started")
    last = run.state.last_fallback_at
    if last is None or run.now - last >= run.config.fallback_period:
        run.say(run.config.fallback_text)
        run.effects.append(FallbackSent())
        return run.result(None, "fallback")
    return run.result(None, "ignored")


def _start(run: _Run, name: str, outcome: str, context: dict[str, Any] | None = None) -> StepResult:
    template = run.templates.get(name)
    if template is None:  # a keyword or switch that points nowhere; the linter prevents it
        log.warning("template %s is not available", name)
        run.say(run.texts.template_gone)
        return run.result(None, "ignored")
    ctx = dict(context or {})
    run.messages.append(interactive(template.entry_message(), run.values(ctx)))
    conv = Conversation(template.template_name, INITIAL, ctx, run.expiry(template), run.now)
    run.effects.append(Entered(template.template_name, INITIAL))
    return run.result(conv, outcome)


def _cancel(run: _Run, conv: Conversation) -> StepResult:
    run.effects.append(Ended(conv.template, conv.step, "cancelled"))
    run.say(run.texts.cancelled)
    return run.result(None, "cancelled")


def _way_out_choice(run: _Run, conv: Conversation | None) -> StepResult:
    if conv is None:
        return _no_conversation(run)
    if run.event.choice_id == CANCEL_ID:
        return _cancel(run, conv)
    if run.event.choice_id == RESTART_ID:
        run.effects.append(Ended(conv.template, conv.step, "restarted"))
        return _start(run, conv.template, "restarted")
    template = run.templates.get(conv.template)
    assert template is not None
    ctx = {k: v for k, v in conv.context.items() if k != INVALID_KEY}
    conv = replace(conv, context=ctx, last_interaction=run.now, expires_at=run.expiry(template))
    _send_step(run, template, conv.step, ctx)
    return run.result(conv, "advanced")


def step_messages(template: TemplateDef, name: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a customer sees on entering step ``name``, as WhatsApp content."""
    step = template.steps[name]
    if name == INITIAL and step.prompt is None and step.message is None:
        return [interactive(template.entry_message(), values)]
    out = [text_message(render(step.prompt, values))] if step.prompt else []
    if step.message is not None:
        out.append(interactive(step.message.model_dump(exclude_none=True), values))
    return out


def _send_step(run: _Run, template: TemplateDef, name: str, context: Mapping[str, Any]) -> None:
    run.messages.extend(step_messages(template, name, run.values(context)))


def _answer(run: _Run, template: TemplateDef, conv: Conversation) -> StepResult:
    step = template.steps[conv.step]
    options = template.step_options(conv.step)
    event = run.event
    if event.kind not in {"text", "choice"}:
        what = MEDIA_NAMES.get(event.message_type, "that kind of message")
        wanted = "one of the options below" if options else expected(step.validation)
        run.say(render(run.texts.media, {"what": what, "expected": wanted}))
        if options:
            _send_step(run, template, conv.step, conv.context)
        return run.result(conv, "invalid")

    if options:
        chosen = _pick(options, event)
        if chosen is None and event.kind == "choice":
            run.say(run.texts.stale)
            _send_step(run, template, conv.step, conv.context)
            return run.result(conv, "stale")
        if chosen is None:
            return _invalid(run, template, conv, run.texts.choose, resend=True)
        key = step.key(conv.step)
        answers = {key: chosen.id, f"{key}_title": chosen.title}
        target = (step.next_steps or {}).get(chosen.id) or step.next_step
        return _advance(run, template, conv, answers, target)

    if event.kind == "choice":  # a tap on an old menu while we wait for typed input
        run.say(run.texts.stale)
        _send_step(run, template, conv.step, conv.context)
        return run.result(conv, "stale")
    checked = check(event.text or "", step.validation)
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
        run.messages.append(_way_out_message(run.texts))
        return run.result(conv, "way_out")
    run.say(error)
    if resend:
        _send_step(run, template, conv.step, conv.context)
    return run.result(conv, "invalid")


def _way_out_message(texts: Texts) -> dict[str, Any]:
    buttons = [(RETRY_ID, texts.retry_title), (RESTART_ID, texts.restart_title), (CANCEL_ID, texts.cancel_title)]
    return {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": texts.way_out},
            "action": {"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in buttons]},
        },
    }


def _advance(
    run: _Run, template: TemplateDef, conv: Conversation, answers: dict[str, Any], target: str | None
) -> StepResult:
    context = {k: v for k, v in conv.context.items() if k != INVALID_KEY} | answers
    if target is None:  # the linter refuses such flows; stay put rather than strand anyone
        log.warning("step %s of %s has no transition", conv.step, template.template_name)
        _send_step(run, template, conv.step, conv.context)
        return run.result(conv, "invalid")
    if target not in template.steps:
        run.effects.append(Ended(template.template_name, conv.step, "switched"))
        return _start(run, target, "switched")

    step: Step = template.steps[target]
    if step.action is not None:
        call = ActionCall(template.template_name, target, run.event.user.key, dict(context))
        try:
            produced = run.actions.run(step.action, call)
        except Exception as exc:  # an action is outside code; the customer must not be stranded
            log.warning("action for step %s of %s failed: %s", target, template.template_name, exc)
            run.say(run.texts.action_failed)
            _send_step(run, template, conv.step, conv.context)
            return run.result(conv, "action_failed")
        context = context | dict(produced)

    _send_step(run, template, target, context)
    run.effects.append(Entered(template.template_name, target))
    if step.end_conversation:
        answers_out = {k: v for k, v in context.items() if not k.startswith("_")}
        run.effects.append(Submit(template.template_name, answers_out))
        run.effects.append(Ended(template.template_name, target, "completed"))
        return run.result(None, "completed")
    return run.result(replace(conv, step=target, context=context), "advanced")


def current_menu(templates: TemplateSet, conv: Conversation, profile_name: str | None = None) -> list[dict]:
    """What the customer was last asked, as WhatsApp content (for ``get_current_menu``)."""
    template = templates.get(conv.template)
    if template is None or conv.step not in template.steps:
        return []
    return step_messages(template, conv.step, {"profile_name": profile_name or "there", **conv.context})
