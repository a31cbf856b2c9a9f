"""ConversationService: the seed's API over a session the caller owns (and commits).

Templates are stored as validated flow definitions; a per-process cache holds the built
``TemplateSet`` (keyword index included) and is rebuilt only when the table changes, so
a worker does not re-read every template per message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.orm import Session

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.content import current_menu
from conversation.events import UserRef
from conversation.models import ConversationEvent, ConversationState, TemplateRevision, WorkflowTemplate, utcnow
from conversation.state import Conversation, EngineConfig, TemplateSet
from templates.lint import LintError
from templates.loader import lint_definitions
from templates.schema import INITIAL, TemplateDef

log = logging.getLogger(__name__)

_OPTION_FIELDS = ("priority", "expiry_hours", "description")


class TemplateInvalid(ValueError):
    """A template (or the set it would join) breaks the flow rules; ``errors`` says where."""

    def __init__(self, errors: list[LintError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class TemplateNotFound(LookupError):
    pass


def to_definition(row: Any) -> TemplateDef:
    """Rebuild the validated flow from its stored row."""
    data: dict[str, Any] = {
        "template_name": row.template_name,
        "template_type": row.template_type,
        "trigger_keywords": list(row.trigger_keywords or []),
        "is_active": row.is_active,
        "menu_structure": row.menu_structure,
        **{k: v for k, v in (row.options or {}).items() if k in _OPTION_FIELDS},
    }
    return TemplateDef.model_validate(data)


def _apply_definition(row: WorkflowTemplate, definition: TemplateDef) -> None:
    dumped = definition.model_dump(mode="json", exclude_none=True)
    row.template_name = definition.template_name
    row.template_type = definition.template_type
    row.trigger_keywords = list(definition.trigger_keywords)
    row.is_active = definition.is_active
    row.menu_structure = dumped["menu_structure"]
    row.options = {k: dumped[k] for k in _OPTION_FIELDS if k in dumped}


_ROW_COLUMNS = (
    WorkflowTemplate.id,
    WorkflowTemplate.template_name,
    WorkflowTemplate.template_type,
    WorkflowTemplate.trigger_keywords,
    WorkflowTemplate.is_active,
    WorkflowTemplate.menu_structure,
    WorkflowTemplate.options,
)


@dataclass
class _Built:
    revision: int | None
    rows: dict[Any, tuple[tuple[Any, ...], TemplateDef | None]]  # id -> (stored columns, validated)
    templates: TemplateSet


_REVISION = select(TemplateRevision.revision).where(TemplateRevision.id == 1)


class _TemplateCache:
    """Process-wide: the built TemplateSet and the template revision it was built from.

    Per message it costs one primary-key read of ``template_revision`` (bumped by a
    trigger on every write). On a change only rows whose stored columns differ are
    validated again, so editing one of 10,000 templates does not stall a worker.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Built] = {}

    def get(self, session: Session) -> TemplateSet:
        bind = session.get_bind()
        key = str(bind.engine.url) if hasattr(bind, "engine") else str(bind)
        revision = session.connection().scalar(_REVISION)
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and revision is not None and cached.revision == revision:
            return cached.templates
        built = _rebuild(session, revision, cached.rows if cached is not None else {})
        with self._lock:
            self._entries[key] = built
        return built.templates

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _rebuild(
    session: Session, revision: int | None, previous: Mapping[Any, tuple[tuple[Any, ...], TemplateDef | None]]
) -> _Built:
    rows: dict[Any, tuple[tuple[Any, ...], TemplateDef | None]] = {}
    for row in session.execute(select(*_ROW_COLUMNS)):
        stored = tuple(row)
        known = previous.get(row.id)
        rows[row.id] = known if known is not None and known[0] == stored else (stored, _definition(row))
    templates = {d.template_name: d for _, d in rows.values() if d is not None}
    return _Built(revision, rows, TemplateSet(templates))


def _definition(row: Any) -> TemplateDef | None:
    try:
        return to_definition(row)
    except ValueError as exc:  # a row edited by hand outside parley; skip it, loudly
        log.error("stored template %s is invalid and is ignored: %s", row.template_name, exc)
        return None


TEMPLATE_CACHE = _TemplateCache()


def record_event(session: Session, user_key: str, template: str, step: str, event: str, now: datetime) -> None:
    """Log where a customer entered or left a flow (``ConversationEvent``), in the caller's transaction."""
    session.add(ConversationEvent(user_key=user_key, template_name=template, step=step, event=event, created_at=now))


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
        stmt = select(ConversationState).where(ConversationState.user_key == user_key)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.session.scalar(stmt)
        if row is None or row.expires_at <= (now or utcnow()):
            return None
        return row

    def start_conversation(self, user: UserRef, template_name: str, now: datetime | None = None) -> ConversationState:
        """Put ``user`` at the start of ``template_name``, replacing any conversation they had."""
        now = now or utcnow()
        template = self.template_set().get(template_name)
        if template is None:
            raise TemplateNotFound(template_name)
        self._end(user.key, "restarted", now)
        record_event(self.session, user.key, template.template_name, INITIAL, "entered", now)
        hours = template.expiry_hours
        expiry = now + (timedelta(hours=hours) if hours else self.config.default_expiry)
        row = ConversationState(
            user_key=user.key,
            phone_number=user.phone,
            user_id=user.user_id,
            conversation_flow=template.template_name,
            current_step=INITIAL,
            context={},
            last_interaction=now,
            expires_at=expiry,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def update_conversation(
        self,
        user_key: str,
        step: str | None = None,
        context: Mapping[str, Any] | None = None,
        expires_at: datetime | None = None,
        now: datetime | None = None,
    ) -> ConversationState:
        """Move the conversation and merge ``context`` into it (keys are added, never wiped)."""
        now = now or utcnow()
        row = self.get_conversation(user_key, now=now, for_update=True)
        if row is None:
            raise LookupError(f"no live conversation for {user_key}")
        if step is not None:
            row.current_step = step
        if context:
            row.context = {**(row.context or {}), **context}
        if expires_at is not None:
            row.expires_at = expires_at
        row.last_interaction = now
        self.session.flush()
        return row

    def end_conversation(self, user_key: str, now: datetime | None = None) -> bool:
        """End ``user_key``'s conversation; an operator ending it counts as "cancelled" at its step."""
        return self._end(user_key, "cancelled", now or utcnow())

    def _end(self, user_key: str, reason: str, now: datetime) -> bool:
        row = self.session.scalar(
            select(ConversationState).where(ConversationState.user_key == user_key).with_for_update()
        )
        if row is None:
            return False
        # An expired row was already abandoned; the drop-off log says so rather than blame the operator.
        event = "expired" if row.expires_at <= now else reason
        record_event(self.session, user_key, row.conversation_flow, row.current_step, event, now)
        self.session.delete(row)
        self.session.flush()
        return True

    def cleanup_expired_conversations(self, now: datetime | None = None, batch_size: int = 500) -> int:
        """Delete expired conversations in batches; safe to run from two processes at once.

        Rows a worker holds locked (a customer writing right now) are skipped, not waited
        for; the worker treats an expired row as absent anyway.
        """
        now = now or utcnow()
        total = 0
        while True:
            due = (
                select(
                    ConversationState.id,
                    ConversationState.user_key,
                    ConversationState.conversation_flow,
                    ConversationState.current_step,
                )
                .where(ConversationState.expires_at <= now)
                .limit(batch_size)
            )
            if self.session.get_bind().dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = self.session.execute(due).all()
            if not rows:
                return total
            # The rows are locked (Postgres) or the database is (SQLite): each one logged here is deleted below.
            for row in rows:
                record_event(self.session, row.user_key, row.conversation_flow, row.current_step, "expired", now)
            batch = [row.id for row in rows]
            self.session.execute(
                delete(ConversationState)
                .where(ConversationState.id.in_(batch))
                .where(ConversationState.expires_at <= now)
            )
            self.session.flush()
            total += len(batch)
            if len(batch) < batch_size:
                return total

    def get_current_menu(self, user_key: str) -> list[dict[str, Any]]:
        """What the customer was last asked (WhatsApp content), or [] without a conversation."""
        row = self.get_conversation(user_key)
        if row is None:
            return []
        return current_menu(self.template_set(), snapshot(row))


def snapshot(row: ConversationState | Row[Any]) -> Conversation:
    """The engine's view of a stored conversation (an ORM row or a Core row of its columns)."""
    return Conversation(
        template=row.conversation_flow,
        step=row.current_step,
        context=dict(row.context or {}),
        expires_at=row.expires_at,
        last_interaction=row.last_interaction,
    )
