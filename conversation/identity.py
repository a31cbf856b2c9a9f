"""A customer who changed phone number or business-scoped user id stays one customer.

``move_customer`` moves everything parley keeps under the old identity to the new one, in
the caller's transaction (so all of it moves, or none): the contact, the live
conversation, the submissions, orders, message logs and pending replies. It is idempotent:
once moved, the old identity owns nothing and a second call finds nothing to do.

When the new identity already has records (the customer wrote from the new number before
the notice was handled), the two are merged: one contact, whose facts take the newer of
each (``CONTACT_MERGE``); of two live conversations the one touched last is kept, since
at most one may be live; every log row goes to the new identity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from conversation.events import IdentityChange
from conversation.handoff_models import Handoff
from conversation.models import (
    Contact,
    ConversationEvent,
    ConversationState,
    CustomerWindow,
    InboundMessage,
    Order,
    OutboundMessage,
    Submission,
)

log = logging.getLogger(__name__)


def _newest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((v for v in (a, b) if v is not None), default=None)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min((v for v in (a, b) if v is not None), default=None)


def _largest(a: int | None, b: int | None) -> int:
    return max(a or 0, b or 0)


def _known(new: Any, old: Any) -> Any:
    return new if new is not None else old


# How each fact of two contacts of one customer combines (kept, merged): the sender's lease
# and backoff keep the later time so a merge never lets a send jump a wait.
CONTACT_MERGE: dict[str, Callable[[Any, Any], Any]] = {
    "profile_name": _known,
    "last_seen_at": _newest,
    "last_fallback_at": _newest,
    "sender_lease_until": _newest,
    "send_not_before": _newest,
    "pair_limit_hits": _largest,
    # Opted out (of notifications, of marketing) if either identity was, since the first time.
    "opted_out_at": _earliest,
    "marketing_opted_out_at": _earliest,
}
# Rows that belong to a customer by user_key and simply follow them.
CARRIED = (InboundMessage, Submission, ConversationEvent, Order, OutboundMessage)


@dataclass(frozen=True)
class Moved:
    new_key: str | None
    old_keys: tuple[str, ...]  # identities whose records moved (empty: the key stays as it was)
    merged: bool = False  # the new identity already had records


def move_customer(session: Session, change: IdentityChange, now: datetime) -> Moved:
    """Move the customer named by ``change``'s previous identity to its new one."""
    previous = [v for v in (change.previous_user_id, change.previous_phone) if v]
    if not previous:
        return Moved(None, ())
    match = [Contact.user_key.in_(previous)]
    if change.previous_user_id:
        match.append(Contact.user_id == change.previous_user_id)
    if change.previous_phone:
        match.append(Contact.phone_number == change.previous_phone)
    found = list(session.scalars(select(Contact).where(or_(*match)).order_by(Contact.user_key)))
    if not found:
        return Moved(None, ())
    first = found[0]
    new_phone = change.new_phone or first.phone_number
    # A number change without a new BSUID keeps the one known; a BSUID change keeps the phone.
    new_user_id = change.new_user_id or first.user_id
    new_key = new_user_id or new_phone
    assert new_key is not None  # a previous identity was found, so one of them is known
    # Lock every row involved in key order, the new identity's included, so two moves (or a
    # move and an inbound message) never wait on each other in a circle.
    keys = sorted({c.user_key for c in found} | {new_key})
    locked = (
        select(Contact)
        .where(Contact.user_key.in_(keys))
        .order_by(Contact.user_key)
        .with_for_update()
        .execution_options(populate_existing=True)  # the facts as of the lock, not the first read
    )
    rows = {c.user_key: c for c in session.scalars(locked)}
    target = rows.get(new_key)
    old_keys = tuple(k for k in keys if k != new_key and k in rows)
    merged = target is not None and bool(old_keys)
    for old_key in old_keys:
        old = rows[old_key]
        if target is None:
            session.expunge(old)  # its primary key changes under it
            session.execute(update(Contact).where(Contact.user_key == old_key).values(user_key=new_key))
            target = session.get(Contact, new_key)
        else:
            for column, combine in CONTACT_MERGE.items():
                setattr(target, column, combine(getattr(target, column), getattr(old, column)))
            session.delete(old)
        _move_conversation(session, old_key, new_key)
        _move_windows(session, old_key, new_key)
        _move_handoffs(session, old_key, new_key, now)
        for model in CARRIED:
            session.execute(update(model).where(model.user_key == old_key).values(user_key=new_key))
    assert target is not None
    target.phone_number, target.user_id = new_phone, new_user_id
    session.execute(
        update(ConversationState)
        .where(ConversationState.user_key == new_key)
        .values(phone_number=new_phone, user_id=new_user_id, updated_at=now)
    )
    session.execute(
        update(Handoff).where(Handoff.user_key == new_key).values(phone_number=new_phone, user_id=new_user_id)
    )
    # Replies not yet sent go to where the customer is now.
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.user_key == new_key, OutboundMessage.status == "pending")
        .values(to_phone=new_phone, to_user_id=new_user_id, updated_at=now)
    )
    session.flush()
    if old_keys:
        log.info("customer moved to a new identity", extra={"user_key": new_key, "merged": merged})
    return Moved(new_key, old_keys, merged)


def _move_conversation(session: Session, old_key: str, new_key: str) -> None:
    """At most one live conversation per customer: of two, the one touched last stays."""
    states = {
        s.user_key: s
        for s in session.scalars(
            select(ConversationState)
            .where(ConversationState.user_key.in_((old_key, new_key)))
            .order_by(ConversationState.user_key)
            .with_for_update()
        )
    }
    old, new = states.get(old_key), states.get(new_key)
    if old is None:
        return
    if new is not None:
        if old.last_interaction <= new.last_interaction:
            session.execute(delete(ConversationState).where(ConversationState.user_key == old_key))
            return
        session.execute(delete(ConversationState).where(ConversationState.user_key == new_key))
    session.execute(update(ConversationState).where(ConversationState.user_key == old_key).values(user_key=new_key))


def _move_windows(session: Session, old_key: str, new_key: str) -> None:
    """One 24-hour window per business number: of two, the later message's stays."""
    old = {
        w.phone_number_id: w for w in session.scalars(select(CustomerWindow).where(CustomerWindow.user_key == old_key))
    }
    if not old:
        return
    new = {
        w.phone_number_id: w for w in session.scalars(select(CustomerWindow).where(CustomerWindow.user_key == new_key))
    }
    for number, was in old.items():
        if number in new:
            new[number].last_inbound_at = max(new[number].last_inbound_at, was.last_inbound_at)
        else:
            session.add(CustomerWindow(user_key=new_key, phone_number_id=number, last_inbound_at=was.last_inbound_at))
    session.execute(delete(CustomerWindow).where(CustomerWindow.user_key == old_key))
    session.flush()


def _move_handoffs(session: Session, old_key: str, new_key: str, now: datetime) -> None:
    """At most one open handoff per customer: of two, the new identity's stays open."""
    open_new = session.scalar(select(Handoff.id).where(Handoff.user_key == new_key, Handoff.released_at.is_(None)))
    if open_new is not None:
        session.execute(
            update(Handoff)
            .where(Handoff.user_key == old_key, Handoff.released_at.is_(None))
            .values(released_at=now, release_reason="merged")
        )
    session.execute(update(Handoff).where(Handoff.user_key == old_key).values(user_key=new_key))


def owner_of(session: Session, outbox_ids: list[int], user_key: str) -> str:
    """Whose the outbox rows are now: ``user_key``, or the identity the customer moved to."""
    if not outbox_ids:
        return user_key
    owner = session.scalar(select(OutboundMessage.user_key).where(OutboundMessage.id == outbox_ids[0]))
    return owner or user_key
