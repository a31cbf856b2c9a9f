"""The flows a worker runs, built once per process and rebuilt only when the table changes.

Templates are stored as validated flow definitions; a per-process cache holds the built
``TemplateSet`` (keyword index included), so a worker does not re-read every template per
message. ``ConversationService`` (the template API) and the turn writer both read through it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation.models import TemplateRevision, WorkflowTemplate
from conversation.state import TemplateSet
from templates.schema import TemplateDef

log = logging.getLogger(__name__)

# Flow file fields beyond the seed's columns, stored in ``workflow_templates.options``.
OPTION_FIELDS = ("priority", "expiry_hours", "description", "language", "translations", "trigger")


def to_definition(row: Any) -> TemplateDef:
    """Rebuild the validated flow from its stored row."""
    data: dict[str, Any] = {
        "template_name": row.template_name,
        "template_type": row.template_type,
        "trigger_keywords": list(row.trigger_keywords or []),
        "is_active": row.is_active,
        "menu_structure": row.menu_structure,
        **{k: v for k, v in (row.options or {}).items() if k in OPTION_FIELDS},
    }
    return TemplateDef.model_validate(data)


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
