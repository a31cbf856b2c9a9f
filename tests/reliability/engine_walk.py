"""Drive the pure step engine like the inbound path does, and check every step of the way.

Shared by the engine properties (random customers on the shipped flows) and the flow
mutation tests (the same customers on mutated flows that loaded).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from conversation.content import current_menu
from conversation.engine import handle
from conversation.events import InboundEvent, UserRef
from conversation.kinds import Role, role
from conversation.state import (
    ActionCall,
    ActionFailed,
    CustomerState,
    EngineConfig,
    FallbackSent,
    StepResult,
    TemplateSet,
)
from templates.schema import HttpAction
from tests.reliability.meta_limits import violations

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CONFIG = EngineConfig()
QUIET_OUTCOMES = frozenset({"reaction", "ignored"})  # the only outcomes that may send nothing
# What the kinds table's non-speaking kinds (and an edit or Flow reply kept without a
# reply) come out as: always silent, never the fallback.
SILENT_OUTCOMES = frozenset({"recorded", "unknown_kind", "submitted"})


class FakeActions:
    """Actions as data: each provides what it declares; ``fail`` makes every call fail."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.orders = 0

    def run(self, action: str | HttpAction, call: ActionCall) -> Mapping[str, Any]:
        if self.fail:
            raise ActionFailed("down")
        if isinstance(action, HttpAction):
            return {key: f"<{key}>" for key in action.provides}
        if action == "place_order":
            self.orders += 1
            return {"order_id": f"ORD-{self.orders:06d}"}
        if action == "lookup_order":
            return {"order_status": "being prepared"}
        if action == "recent_orders":
            return {"orders_summary": "ORD-000001: 2 x Coffee"}
        raise ActionFailed(f"no action {action}")


@dataclass
class Walker:
    """One customer's state across events, updated as ``conversation/turn.py`` does."""

    templates: TemplateSet
    profile_name: str | None = "Ann"
    actions: FakeActions = field(default_factory=FakeActions)
    state: CustomerState = field(default_factory=lambda: CustomerState(conversation=None))
    now: datetime = START
    steps: int = 0
    quiet: frozenset[str] = QUIET_OUTCOMES

    def send(
        self, kind: str, text: str | None = None, choice_id: str | None = None, mtype: str = "", **fields: Any
    ) -> StepResult:
        self.steps += 1
        event = InboundEvent(
            wamid=f"wamid.walk{self.steps}",
            user=UserRef(user_id=None, phone="15550001111", profile_name=self.profile_name),
            phone_number_id="100",
            timestamp=self.now,
            kind=kind,  # type: ignore[arg-type]
            message_type=mtype or {"choice": "interactive", "media": "image"}.get(kind, kind),
            text=text,
            choice_id=choice_id,
            **fields,
        )
        self.state = replace(self.state, profile_name=self.profile_name)
        result = handle(self.templates, self.state, event, self.now, CONFIG, self.actions)
        check_result(self.templates, result, kind, self.quiet)
        fallback = self.now if any(isinstance(e, FallbackSent) for e in result.effects) else None
        self.state = CustomerState(
            conversation=result.conversation,
            last_fallback_at=fallback or self.state.last_fallback_at,
            profile_name=self.profile_name,
        )
        return result

    def wait(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def check_result(templates: TemplateSet, result: StepResult, kind: str, quiet: frozenset[str] = QUIET_OUTCOMES) -> None:
    """No customer left without a reply path, nothing Meta would refuse."""
    if role(kind) in (Role.EVENT, Role.IDENTITY, Role.UNKNOWN):  # type: ignore[arg-type]
        assert result.outcome in SILENT_OUTCOMES | {"reaction"}, f"event {kind} came out as {result.outcome}"
    if result.outcome in SILENT_OUTCOMES:
        assert not result.messages and not any(isinstance(e, FallbackSent) for e in result.effects)
    elif kind != "reaction" and result.outcome not in quiet:
        assert result.messages, f"outcome {result.outcome} sent nothing"
    if result.outcome == "ignored":
        assert result.conversation is None, "only a customer without a conversation is ever ignored"
    for content in result.messages:
        problems = violations(content)
        assert not problems, f"Meta would refuse {content}: {problems}"
    conv = result.conversation
    if conv is not None:
        template = templates.get(conv.template)
        assert template is not None, f"conversation left in unknown template {conv.template}"
        assert conv.step in template.steps, f"conversation left in unknown step {conv.template}.{conv.step}"
        # The customer can always be shown what is asked of them.
        assert current_menu(templates, conv), f"{conv.template}.{conv.step} has nothing to show"


def option_ids(templates: TemplateSet) -> list[str]:
    ids = []
    for template in templates.templates.values():
        for step in template.steps:
            ids.extend(o.id for o in template.step_options(step))
    return ids


def option_titles(templates: TemplateSet) -> list[str]:
    titles = []
    for template in templates.templates.values():
        for step in template.steps:
            titles.extend(o.title for o in template.step_options(step))
    return titles
