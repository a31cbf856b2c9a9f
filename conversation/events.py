"""What the engine consumes: one inbound customer message, already parsed and JSON-free.

``payload.py`` turns Meta's webhook JSON into these; the engine never sees raw JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# Kinds the engine distinguishes. Media and other types share "media"/"other" handling.
EventKind = Literal[
    "text",  # typed text (text.body)
    "choice",  # interactive button_reply / list_reply, or a template quick-reply button
    "media",  # image, audio, video, document, sticker
    "location",
    "contacts",
    "reaction",
    "unsupported",  # Meta's "unsupported" type, or any type parley does not know
]


@dataclass(frozen=True)
class UserRef:
    """Who wrote: BSUID when Meta sent one, phone when it may be shared; at least one is set."""

    user_id: str | None
    phone: str | None
    profile_name: str | None = None

    @property
    def key(self) -> str:
        """The identity a conversation belongs to (DESIGN.md, "Users and identity")."""
        key = self.user_id or self.phone
        if not key:
            raise ValueError("a user needs a BSUID or a phone number")
        return key


@dataclass(frozen=True)
class InboundEvent:
    wamid: str
    user: UserRef
    phone_number_id: str  # the business number it arrived on; replies go out from it
    timestamp: datetime
    kind: EventKind
    message_type: str  # Meta's `type` as sent (text, interactive, image, ...)
    text: str | None = None  # text body, or the tapped option's title
    choice_id: str | None = None  # id of the tapped button / list row (or template button payload)
    context_wamid: str | None = None  # the message of ours that held the tapped button
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class StatusEvent:
    """A delivery receipt for one of our messages."""

    wamid: str
    status: str  # sent | delivered | read | failed | played
    timestamp: datetime
    recipient: str | None
    error_code: int | None = None
    error_title: str | None = None
