"""ConversationService: the seed's API over a session the caller owns (and commits).

Templates are read through the per-process cache (``template_cache.py``); a
conversation's writes (start, move, end, expiry) are the turn writer's (``turn.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import turn
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.content import current_menu
from conversation.events import UserRef
from conversation.models import ConversationState, WorkflowTemplate, utcnow
from conversation.state import EngineConfig, TemplateSet
from conversation.template_cache import OPTION_FIELDS, TEMPLATE_CACHE, to_definition
from templates.lint import LintError
from templates.loader import lint_definitions
from templates.schema import TemplateDef

__all__ = ["TEMPLATE_CACHE", "ConversationService", "TemplateInvalid", "TemplateNotFound", "to_definition"]


class TemplateInvalid(ValueError):
    """A template (or the set it would join) breaks the flow rules; ``errors`` says where."""

    def __init__(self, errors: list[LintError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class TemplateNotFound(LookupError):
    pass


def _apply_definition(row: WorkflowTemplate, definition: TemplateDef) -> None:
    dumped = definition.model_dump(mode="json", exclude_none=True)
    row.template_name = definition.template_name
    row.template_type = definition.template_type
    row.trigger_keywords = list(definition.trigger_keywords)
    row.is_active = definition.is_active
    row.menu_structure = dumped["menu_structure"]
    row.options = {k: dumped[k] for k in OPTION_FIELDS if k in dumped}


@dataclass(frozen=True)
class UpsertResult:
    template: WorkflowTemplate
    created: bool
    changed: bool


class ConversationService:
    def __init__(self, session: Session, config: EngineConfig | None = None) -> None:
        self.session = session
        self.config = config or EngineConfig()

    # --- templates --------------------------------------------------------------------

    def template_set(self) -> TemplateSet:
        return TEMPLATE_CACHE.get(self.session)

    def list_templates(self, active_only: bool = False) -> list[WorkflowTemplate]:
        stmt = select(WorkflowTemplate).order_by(WorkflowTemplate.template_name)
        if active_only:
            stmt = stmt.where(WorkflowTemplate.is_active.is_(True))
        return list(self.session.scalars(stmt))

    def get_template(self, name: str) -> WorkflowTemplate | None:
        return self.session.scalar(select(WorkflowTemplate).where(WorkflowTemplate.template_name == name))

    def find_template_by_keyword(self, text: str) -> WorkflowTemplate | None:
        name = self.template_set().keywords.search(text)
        return self.get_template(name) if name else None

    def validate_templates(self, incoming: Mapping[str, TemplateDef], removed: Iterable[str] = ()) -> list[LintError]:
        """Lint ``incoming`` together with the stored templates it would live beside.

        Only errors this change introduces are returned: a stored template that was
        already broken does not block an unrelated update.
        """
        gone = set(removed)
        # The cached set is validated already and follows this transaction's own writes
        # (the revision trigger fires in it), so nothing stored is validated again here.
        stored = dict(self.template_set().templates)
        after = {n: d for n, d in stored.items() if n not in gone} | dict(incoming)

        def run(defs: Mapping[str, TemplateDef]) -> list[LintError]:
            sources = {name: f"template {name}" for name in defs}
            return lint_definitions(defs, sources, ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)

        before = set(run(stored))
        return [e for e in run(after) if e not in before]

    def create_template(self, definition: TemplateDef) -> WorkflowTemplate:
        if self.get_template(definition.template_name) is not None:
            raise ValueError(f"template {definition.template_name} already exists")
        return self.upsert_template(definition).template

    def update_template(self, name: str, definition: TemplateDef) -> WorkflowTemplate:
        if self.get_template(name) is None:
            raise TemplateNotFound(name)
        if definition.template_name != name:
            raise ValueError(f"template_name {definition.template_name!r} does not match {name!r}")
        return self.upsert_template(definition).template

    def upsert_template(self, definition: TemplateDef) -> UpsertResult:
        return self.upsert_templates([definition])[0]

    def upsert_templates(self, definitions: Iterable[TemplateDef]) -> list[UpsertResult]:
        """Create or update several templates at once, validated as one set (idempotent)."""
        incoming = {d.template_name: d for d in definitions}
        errors = self.validate_templates(incoming)
        if errors:
            raise TemplateInvalid(errors)
        results = []
        for definition in incoming.values():
            row = self.get_template(definition.template_name)
            created = row is None
            if row is None:
                row = WorkflowTemplate()
                self.session.add(row)
            before = None if created else to_definition(row)
            changed = before != definition
            if changed:
                _apply_definition(row, definition)
                row.updated_at = utcnow()
            results.append(UpsertResult(row, created, changed))
        self.session.flush()
        return results

    def delete_template(self, name: str) -> bool:
        row = self.get_template(name)
        if row is None:
            return False
        errors = self.validate_templates({}, removed=[name])
        if errors:
            raise TemplateInvalid(errors)
        self.session.delete(row)
        self.session.flush()
        return True

    # --- conversations ----------------------------------------------------------------

    def get_conversation(
        self, user_key: str, now: datetime | None = None, for_update: bool = False
    ) -> ConversationState | None:
        """The live conversation of ``user_key``; an expired one counts as absent."""
        return turn.live_conversation(self.session, user_key, now or utcnow(), for_update)

    def start_conversation(self, user: UserRef, template_name: str, now: datetime | None = None) -> ConversationState:
        """Put ``user`` at the start of ``template_name``, replacing any conversation they had."""
        template = self.template_set().get(template_name)
        if template is None:
            raise TemplateNotFound(template_name)
        return turn.start(self.session, user, template, self.config, now or utcnow())

    def update_conversation(
        self,
        user_key: str,
        step: str | None = None,
        context: Mapping[str, Any] | None = None,
        expires_at: datetime | None = None,
        now: datetime | None = None,
    ) -> ConversationState:
        """Move the conversation and merge ``context`` into it (keys are added, never wiped)."""
        row = turn.move(self.session, user_key, now or utcnow(), step, dict(context or {}), expires_at)
        if row is None:
            raise LookupError(f"no live conversation for {user_key}")
        return row

    def end_conversation(self, user_key: str, now: datetime | None = None) -> bool:
        """End ``user_key``'s conversation; an operator ending it counts as "cancelled" at its step."""
        return turn.end(self.session, user_key, "cancelled", now or utcnow())

    def cleanup_expired_conversations(self, now: datetime | None = None, batch_size: int = 500) -> int:
        """Delete expired conversations in batches; safe to run from two processes at once."""
        return turn.expire(self.session, now or utcnow(), batch_size)

    def get_current_menu(self, user_key: str) -> list[dict[str, Any]]:
        """What the customer was last asked (WhatsApp content), or [] without a conversation."""
        row = self.get_conversation(user_key)
        if row is None:
            return []
        return current_menu(self.template_set(), turn.snapshot(row))
