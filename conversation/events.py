"""What the engine consumes: one inbound customer message, already parsed and JSON-free.

Which kinds there are, and what each means, is the table in ``kinds.py``.

``payload.py`` turns Meta's webhook JSON into these; the engine never sees raw JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conversation.kinds import EventKind

__all__ = ["Cart", "CartItem", "EventKind", "IdentityChange", "InboundEvent", "StatusEvent", "UserRef"]


@dataclass(frozen=True)
class UserRef:
    """Who wrote: BSUID when Meta sent one, phone when it may be shared; at least one is set."""

    user_id: str | None
    phone: str | None
    profile_name: str | None = None

    @property
    def key(self) -> str:
        """The identity a conversation belongs to (by BSUID when present, else by phone)."""
        key = self.user_id or self.phone
        if not key:
            raise ValueError("a user needs a BSUID or a phone number")
        return key


@dataclass(frozen=True)
class CartItem:
    product_id: str  # the catalog's product_retailer_id
    quantity: int
    price: str | None  # decimal as text, as Meta sends it ("3.50"); never a float
    currency: str | None


@dataclass(frozen=True)
class Cart:
    """A catalog order (``type: order``)."""

    catalog_id: str | None
    items: tuple[CartItem, ...]
    note: str | None = None  # the text the customer typed with the cart


@dataclass(frozen=True)
class IdentityChange:
    """A system notice that the customer is now known by another phone number or BSUID.

    ``previous_*`` name who they were (the notice's sender when Meta does not say);
    ``new_*`` who they are now, each only when the notice carries it.
    """

    previous_phone: str | None
    previous_user_id: str | None
    new_phone: str | None
    new_user_id: str | None


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
    target_wamid: str | None = None  # the customer's own message an edit or a deletion is about
    cart: Cart | None = None  # kind "order"
    answers: dict[str, Any] | None = None  # kind "flow_reply": the Flow's response_json
    identity: IdentityChange | None = None  # kind "identity"
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
