"""Every kind of inbound message, and what it means: the one table parser and engine share.

A webhook ``messages[]`` item is named by its ``type`` and, for ``interactive`` and
``system``, by the type inside it. Each name maps to an engine kind and a role:

- ``speaking``: the customer says something; the flow answers it;
- ``event``: something happened (a deletion, a call-permission answer, a notice); it is
  recorded and never answered;
- ``edit``: a change of an earlier message; recorded against the original, and answered
  only when it corrects the customer's latest answer to an input step (``engine.py``);
- ``identity``: the customer's phone number or business-scoped id changed; recorded, never
  answered, and the customer's records move to the new identity (``identity.py``);
- ``unknown``: a name this table does not hold (Meta adds kinds); recorded, counted
  (outcome ``unknown_kind``), never answered and never the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

EventKind = Literal[
    "text",  # typed text (text.body)
    "choice",  # interactive button_reply / list_reply, or a template quick-reply button
    "media",  # image, audio, video, document, sticker
    "location",
    "contacts",
    "order",  # a cart sent from the business's WhatsApp catalog
    "flow_reply",  # a WhatsApp Flow completed (interactive nfm_reply)
    "unsupported",  # Meta's own "unsupported": the customer sent something Meta cannot pass on
    "reaction",
    "revoke",  # the customer deleted a message
    "call_permission",  # the customer answered a request to call them
    "notice",  # a system notice that changes nothing parley keeps
    "welcome",  # the customer opened the chat for the first time
    "edit",
    "identity",
    "unknown",
]


class Role(StrEnum):
    SPEAKING = "speaking"
    EVENT = "event"
    EDIT = "edit"
    IDENTITY = "identity"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Kind:
    name: str  # Meta's type, "interactive.<type>" or "system.<type>"
    kind: EventKind
    role: Role
    what: str  # what it is, for the flow-format documentation


KINDS: tuple[Kind, ...] = (
    Kind("text", "text", Role.SPEAKING, "typed text; answers a step or starts a flow by keyword"),
    Kind("interactive.button_reply", "choice", Role.SPEAKING, "a reply button tapped"),
    Kind("interactive.list_reply", "choice", Role.SPEAKING, "a list row chosen"),
    Kind("button", "choice", Role.SPEAKING, "a message template's quick-reply button tapped"),
    Kind("interactive.nfm_reply", "flow_reply", Role.SPEAKING, "a WhatsApp Flow completed; its answers are kept"),
    Kind("order", "order", Role.SPEAKING, "a catalog cart; starts the flow with `trigger: order`"),
    Kind("image", "media", Role.SPEAKING, "a photo"),
    Kind("audio", "media", Role.SPEAKING, "a voice message or audio file"),
    Kind("video", "media", Role.SPEAKING, "a video"),
    Kind("document", "media", Role.SPEAKING, "a document"),
    Kind("sticker", "media", Role.SPEAKING, "a sticker"),
    Kind("location", "location", Role.SPEAKING, "a shared location"),
    Kind("contacts", "contacts", Role.SPEAKING, "shared contact cards"),
    Kind("unsupported", "unsupported", Role.SPEAKING, "something Meta cannot pass on (a poll, a view-once ...)"),
    Kind("reaction", "reaction", Role.EVENT, "an emoji on one of our messages, or its removal"),
    Kind("revoke", "revoke", Role.EVENT, "the customer deleted a message"),
    Kind("interactive.call_permission_reply", "call_permission", Role.EVENT, "an answer to a call-permission request"),
    Kind("system.customer_identity_changed", "notice", Role.EVENT, "the customer's security code changed"),
    Kind("request_welcome", "welcome", Role.EVENT, "the customer opened the chat for the first time"),
    Kind("edit", "edit", Role.EDIT, "the customer edited a message; may re-answer a step"),
    Kind("system.user_changed_number", "identity", Role.IDENTITY, "new phone number; the customer moves to it"),
    Kind("system.user_changed_user_id", "identity", Role.IDENTITY, "new business-scoped user id; the customer moves"),
)
BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
ROLES: dict[EventKind, Role] = {k.kind: k.role for k in KINDS} | {"unknown": Role.UNKNOWN}
# Types whose object names a type of its own; the pair is what the table is keyed by.
NESTED = frozenset({"interactive", "system"})
assert all(ROLES[k.kind] == k.role for k in KINDS), "one role per engine kind"


def lookup(message_type: str, inner_type: str | None = None) -> Kind:
    """The table's row for a message; an ``unknown`` row for anything it does not hold."""
    name = f"{message_type}.{inner_type}" if message_type in NESTED else message_type
    return BY_NAME.get(name) or Kind(name, "unknown", Role.UNKNOWN, "not known to parley")


def role(kind: EventKind) -> Role:
    return ROLES.get(kind, Role.UNKNOWN)


def opens_window(kind: EventKind) -> bool:
    """Whether the message opens the 24-hour window: Meta opens it on a customer's message,
    and a deletion, a notice or an identity change is not one."""
    return role(kind) in (Role.SPEAKING, Role.EDIT)


def reads(kind: EventKind, outcome: str) -> bool:
    """Whether the message gets a read receipt: what the flow answered, never an event (an
    edit only when it re-answered a step)."""
    if role(kind) is Role.EDIT:
        return outcome != "recorded"
    return role(kind) is Role.SPEAKING
