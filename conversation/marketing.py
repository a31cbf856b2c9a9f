"""Marketing opt-out as WhatsApp records it: the customer's "Stop promotions" and resume.

Meta tells parley with a ``user_preferences`` webhook and from then on refuses marketing
templates to that customer itself (error 131050), so parley refuses them first, with a
reason the caller can show. It is a separate state from the opt-out words of
``consent.py``: a customer who stopped promotions still gets utility templates such as
``order_ready`` (Meta's rule: the stop is about marketing only), and a customer who sent
an opt-out word gets no notification of any category.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from conversation.account_changes import PreferenceChange
from conversation.models import Contact

log = logging.getLogger(__name__)


def apply_preference(session: Session, change: PreferenceChange) -> bool:
    """Record a stop or a resume on the customer's contact (created if parley never met
    them); False when it changed nothing. A change older than the stop on record (a late
    redelivery) leaves it as it is."""
    user = change.user
    match = [Contact.user_key == user.key]
    if user.user_id:
        match.append(Contact.user_id == user.user_id)
    if user.phone:
        match.append(Contact.phone_number == user.phone)
    contact = session.scalar(
        select(Contact)
        .where(or_(*match))
        .order_by((Contact.user_key == user.key).desc(), Contact.user_key)
        .limit(1)
        .with_for_update()
    )
    if contact is None:
        contact = Contact(user_key=user.key, phone_number=user.phone, user_id=user.user_id, pair_limit_hits=0)
        session.add(contact)
    since = contact.marketing_opted_out_at
    if change.value == "stop":
        if since is not None:
            return False
        contact.marketing_opted_out_at = change.timestamp
    else:
        if since is None or change.timestamp < since:
            return False
        contact.marketing_opted_out_at = None
    session.flush()
    log.info("marketing preference changed", extra={"user_key": contact.user_key, "value": change.value})
    return True


def stopped_since(session: Session, user_key: str) -> datetime | None:
    """When the customer stopped marketing messages; None when they have not."""
    return session.scalar(select(Contact.marketing_opted_out_at).where(Contact.user_key == user_key))
