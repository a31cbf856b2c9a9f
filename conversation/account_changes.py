"""Webhook changes that are not messages but still matter: marketing preferences and
Meta's verdicts on message templates. Pure; ``payload.py`` calls these per change.

- ``user_preferences``: the customer tapped "Stop promotions" on a marketing message
  (``value: stop``) or resumed them (``resume``), category ``marketing_messages``;
- ``message_template_status_update`` (``event``: APPROVED, PENDING, REJECTED, PAUSED,
  DISABLED, ...), ``message_template_quality_update`` (``new_quality_score``) and
  ``template_category_update`` (``new_category``): one template name and language each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from conversation.events import UserRef
from conversation.message_bodies import Unreadable, clean_text

TEMPLATE_FIELDS = frozenset(
    {
        "message_template_status_update",
        "message_template_quality_update",
        "template_category_update",
        # The name some accounts' subscriptions use for the category change.
        "message_template_category_update",
    }
)
PREFERENCE_FIELD = "user_preferences"
MARKETING = "marketing_messages"
_WORD = re.compile(r"[A-Za-z_]{1,32}")
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?")
_TEMPLATE_ID = re.compile(r"[0-9]{1,64}")


@dataclass(frozen=True)
class PreferenceChange:
    """A customer stopped or resumed marketing messages."""

    user: UserRef
    value: Literal["stop", "resume"]
    timestamp: datetime


@dataclass(frozen=True)
class TemplateUpdate:
    """What Meta now says about one message template; ``None`` fields are unchanged."""

    name: str
    language: str
    template_id: str | None
    status: str | None = None
    reason: str | None = None
    category: str | None = None
    quality: str | None = None


def preference_value(item: dict[str, Any]) -> Literal["stop", "resume"] | None:
    """``stop``/``resume`` of a marketing preference; None for any other category (skipped)."""
    if item.get("category") != MARKETING:
        return None
    value = item.get("value")
    if value not in ("stop", "resume"):
        raise Unreadable("user_preferences value is neither stop nor resume")
    return value


def read_template_update(field: str, value: Any) -> TemplateUpdate:
    if not isinstance(value, dict):
        raise Unreadable("change has no value object")
    name = value.get("message_template_name")
    if not isinstance(name, str) or not _TEMPLATE_NAME.fullmatch(name):
        raise Unreadable("message_template_name missing or invalid")
    language = value.get("message_template_language")
    if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
        raise Unreadable("message_template_language missing or invalid")
    raw_id = value.get("message_template_id")
    template_id = str(raw_id) if isinstance(raw_id, int | str) and _TEMPLATE_ID.fullmatch(str(raw_id)) else None
    if field == "message_template_status_update":
        status = _word(value.get("event"), "event")
        reason = clean_text(value.get("reason"))
        info = value.get("other_info")
        if isinstance(info, dict):  # a pause or a lock says why here
            reason = clean_text(info.get("description")) or clean_text(info.get("title")) or reason
        return TemplateUpdate(name, language, template_id, status=status, reason=reason[:2000] if reason else None)
    if field == "message_template_quality_update":
        return TemplateUpdate(name, language, template_id, quality=_word(value.get("new_quality_score"), "quality"))
    category = value.get("new_category") or value.get("correct_category")
    return TemplateUpdate(name, language, template_id, category=_word(category, "category"))


def _word(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise Unreadable(f"{what} missing or invalid")
    return value.upper()
