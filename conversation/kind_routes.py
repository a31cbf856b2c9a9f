"""Routes for the inbound kinds that are not plain answers: events, edits, orders, Flow replies.

Each rule reads the kinds table (``kinds.py``); ``engine.ROUTES`` places them. The rules
they keep:

- Events (a deletion, a call-permission answer, a system notice, an identity change, a
  kind parley does not know) change nothing and are never answered; the caller records
  them. A deletion of the customer's latest answer undoes nothing: the answer was taken
  and its reply may already be on its way; the deletion is recorded against it.
- An edit is recorded against the original message. When it edits the customer's latest
  accepted answer, and that answer was typed into an input step (a question, not a menu)
  of the conversation still live, the edited text answers that step again: the customer
  goes back to it and moves on as the new answer says (or is told it is invalid). Any
  other edit is recorded only.
- A catalog order starts the flow with ``trigger: order`` (ending a live conversation),
  its cart in the context. With no such flow, the order is stored by the ``place_order``
  action and the customer is told it was received.
- A WhatsApp Flow's answers join the context of the live conversation's step (and, if it
  is a question with a next step, move the customer on); with no conversation live they
  are kept as a submission of ``FLOW_SUBMISSION``. Never the fallback.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from conversation.cart import order_context
from conversation.kinds import Role, role
from conversation.state import ActionCall, EndReason, Outcome, StepResult, Submit
from conversation.steps import ANSWERED_KEY, Run, advance, answer, start
from templates.placeholders import render

log = logging.getLogger(__name__)

FLOW_SUBMISSION = "whatsapp_flow"  # submissions.template_name of Flow answers with no conversation
ORDER_ACTION = "place_order"
# What the action is told it runs for when a cart comes in with no order flow to run it.
NO_FLOW = ("catalog_order", "received")


def is_event(run: Run) -> bool:
    return role(run.event.kind) in (Role.EVENT, Role.IDENTITY, Role.UNKNOWN)


def is_edit(run: Run) -> bool:
    return role(run.event.kind) is Role.EDIT


def is_order(run: Run) -> bool:
    return run.event.kind == "order" and run.event.cart is not None


def is_flow_reply(run: Run) -> bool:
    return run.event.kind == "flow_reply"


def record_event(run: Run) -> StepResult:
    unknown = role(run.event.kind) is Role.UNKNOWN
    return run.result(run.conv, Outcome.UNKNOWN_KIND if unknown else Outcome.RECORDED)


def edit_or_record(run: Run) -> StepResult:
    conv, template, event = run.conv, run.template, run.event
    answered = conv.context.get(ANSWERED_KEY) if conv is not None else None
    if (
        conv is None
        or template is None
        or event.text is None
        or not isinstance(answered, dict)
        or answered.get("wamid") != event.target_wamid
        or answered.get("step") not in template.steps
        or template.step_options(answered["step"])
    ):
        return run.result(conv, Outcome.RECORDED)
    back = replace(conv, step=answered["step"], last_interaction=run.now, expires_at=run.expiry(template))
    # The edited text stands in for the typed answer it replaces.
    run.event = replace(event, kind="text")
    return answer(run, template, back)


def take_order(run: Run) -> StepResult:
    assert run.event.cart is not None
    cart = order_context(run.event.cart)
    flow = run.templates.order_flow
    if flow is not None:
        if run.conv is not None:
            run.end(run.conv, EndReason.SWITCHED)
        return start(run, flow, Outcome.STARTED, context=cart)
    call = ActionCall(*NO_FLOW, run.event.user.key, cart)
    try:
        produced = run.actions.run(ORDER_ACTION, call)
    except Exception as exc:  # an action is outside code; the customer must not be stranded
        log.warning("storing a catalog order failed: %s", exc)
        run.say(run.texts.action_failed)
        return run.result(run.conv, Outcome.ACTION_FAILED)
    run.say(render(run.texts.order_received, run.values(cart | dict(produced))))
    return run.result(run.conv, Outcome.ORDER_RECEIVED)


def flow_answers(answers: dict[str, Any] | None) -> dict[str, Any]:
    """Context-safe answers: bookkeeping keys (``_``-prefixed) are not the Flow's to set."""
    return {str(k): v for k, v in (answers or {}).items() if not str(k).startswith("_")}


def take_flow_reply(run: Run) -> StepResult:
    answers = flow_answers(run.event.answers)
    template = run.template
    if run.conv is None or template is None:
        run.effects.append(Submit(FLOW_SUBMISSION, answers))
        return run.result(None, Outcome.SUBMITTED)
    conv = replace(run.conv, last_interaction=run.now, expires_at=run.expiry(template))
    step = template.steps[conv.step]
    if step.next_step is not None and not template.step_options(conv.step):
        return advance(run, template, conv, answers, step.next_step)
    return run.result(replace(conv, context=conv.context | answers), Outcome.RECORDED)
