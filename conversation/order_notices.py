"""The café's promise kept: "We'll let you know when it's ready".

``order_ready`` finds the order the ``place_order`` action stored and builds the
notification of the ``order_ready`` message template to the customer who placed it, in
their language where the catalogue has the template in it. Its idempotency key is the
order's, so marking one order ready twice notifies once.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from conversation.models import Contact, Order
from conversation.notifications import NotificationRequest, TemplateRequest
from templates.message_templates import Catalogue

TEMPLATE = "order_ready"
LANGUAGE = "en_US"
_NUMBER = re.compile(r"^(?:ORD-?)?0*(\d{1,18})$", re.IGNORECASE)


class OrderNotFound(LookupError):
    pass


def order_id(number: str) -> int | None:
    """The row id of ``ORD-000002`` (or ``2``); None when it is no order number."""
    match = _NUMBER.match(number.strip())
    return int(match.group(1)) if match else None


def order_ready(session: Session, number: str, catalogue: Catalogue) -> NotificationRequest:
    """The notification telling the customer that order ``number`` is ready; OrderNotFound otherwise."""
    found = order_id(number)
    order = session.get(Order, found) if found else None
    if order is None:
        raise OrderNotFound(f"no order {number}")
    contact = session.get(Contact, order.user_key)
    language = catalogue.language_for(TEMPLATE, contact.language if contact else None, LANGUAGE)
    return NotificationRequest(
        to=order.user_key,
        idempotency_key=f"order_ready:{order.number}",
        template=TemplateRequest(TEMPLATE, language, [order.number]),
    )
