"""The identity move on real Postgres: one customer before and after a number or BSUID change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conversation.events import IdentityChange
from conversation.identity import move_customer
from conversation.models import (
    Contact,
    ConversationEvent,
    ConversationState,
    InboundMessage,
    Order,
    OutboundMessage,
    Submission,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
OLD_PHONE, NEW_PHONE = "15550001111", "15550002222"
OLD_BSUID, NEW_BSUID = "US.11112222333344445555", "US.99998888777766665555"


def customer(session: Session, key: str, phone: str | None, user_id: str | None, touched: datetime = NOW) -> None:
    """A customer midway through an order, with some history: every table that has a user_key."""
    session.add(Contact(user_key=key, phone_number=phone, user_id=user_id, last_seen_at=touched, pair_limit_hits=0))
    session.add(
        ConversationState(
            user_key=key,
            phone_number=phone,
            user_id=user_id,
            conversation_flow="new_order",
            current_step="quantity",
            context={"product": key},
            last_interaction=touched,
            expires_at=touched + timedelta(hours=24),
        )
    )
    session.add(Submission(template_name="support", user_key=key, phone_number=phone, answers={"issue": "late"}))
    session.add(Order(user_key=key, items={"product": "tea"}))
    session.add(ConversationEvent(user_key=key, template_name="new_order", step="initial", event="entered"))
    session.add(
        InboundMessage(
            wamid=f"wamid.{uuid.uuid4().hex}", user_key=key, message_type="text", payload={}, received_at=touched
        )
    )
    for status in ("read", "pending"):
        session.add(
            OutboundMessage(
                user_key=key,
                phone_number_id="PNID",
                to_phone=phone,
                to_user_id=user_id,
                content={"type": "text"},
                status=status,
            )
        )
    session.flush()


def owned(session: Session, key: str) -> dict[str, int]:
    """How many rows of each table the identity ``key`` owns."""
    models = (Contact, ConversationState, Submission, Order, ConversationEvent, InboundMessage, OutboundMessage)
    return {
        m.__tablename__: session.scalar(select(func.count()).select_from(m).where(m.user_key == key)) for m in models
    }


ALL_OF_ONE = {
    "contacts": 1,
    "conversation_state": 1,
    "submissions": 1,
    "orders": 1,
    "conversation_events": 1,
    "inbound_messages": 1,
    "outbound_messages": 2,
}
NOTHING = dict.fromkeys(ALL_OF_ONE, 0)


def test_a_number_change_moves_everything_to_the_new_number(db_session: Session) -> None:
    customer(db_session, OLD_PHONE, OLD_PHONE, None)
    moved = move_customer(db_session, IdentityChange(OLD_PHONE, None, NEW_PHONE, None), NOW)
    assert (moved.new_key, moved.old_keys, moved.merged) == (NEW_PHONE, (OLD_PHONE,), False)
    assert owned(db_session, OLD_PHONE) == NOTHING
    assert owned(db_session, NEW_PHONE) == ALL_OF_ONE
    contact = db_session.get(Contact, NEW_PHONE)
    assert contact is not None and contact.phone_number == NEW_PHONE
    state = db_session.scalar(select(ConversationState).where(ConversationState.user_key == NEW_PHONE))
    assert state is not None and (state.current_step, state.context, state.phone_number) == (
        "quantity",
        {"product": OLD_PHONE},
        NEW_PHONE,
    )
    pending = db_session.scalars(select(OutboundMessage).where(OutboundMessage.status == "pending")).all()
    assert [r.to_phone for r in pending] == [NEW_PHONE]  # the reply not yet sent goes to the new number
    sent = db_session.scalars(select(OutboundMessage).where(OutboundMessage.status == "read")).all()
    assert [r.to_phone for r in sent] == [OLD_PHONE]  # history says where it went


def test_the_move_is_idempotent(db_session: Session) -> None:
    customer(db_session, OLD_PHONE, OLD_PHONE, None)
    change = IdentityChange(OLD_PHONE, None, NEW_PHONE, None)
    move_customer(db_session, change, NOW)
    again = move_customer(db_session, change, NOW)
    assert again.old_keys == ()
    assert owned(db_session, NEW_PHONE) == ALL_OF_ONE and owned(db_session, OLD_PHONE) == NOTHING


def test_a_bsuid_change_moves_the_customer_and_keeps_the_phone(db_session: Session) -> None:
    customer(db_session, OLD_BSUID, OLD_PHONE, OLD_BSUID)
    moved = move_customer(db_session, IdentityChange(None, OLD_BSUID, None, NEW_BSUID), NOW)
    assert moved.new_key == NEW_BSUID and owned(db_session, NEW_BSUID) == ALL_OF_ONE
    contact = db_session.get(Contact, NEW_BSUID)
    assert contact is not None and (contact.phone_number, contact.user_id) == (OLD_PHONE, NEW_BSUID)
    assert owned(db_session, OLD_BSUID) == NOTHING


def test_a_number_change_of_a_bsuid_customer_takes_the_new_bsuid_and_phone(db_session: Session) -> None:
    customer(db_session, OLD_BSUID, OLD_PHONE, OLD_BSUID)
    moved = move_customer(db_session, IdentityChange(OLD_PHONE, OLD_BSUID, NEW_PHONE, NEW_BSUID), NOW)
    assert moved.new_key == NEW_BSUID
    state = db_session.scalar(select(ConversationState).where(ConversationState.user_key == NEW_BSUID))
    assert state is not None and (state.phone_number, state.user_id) == (NEW_PHONE, NEW_BSUID)


def test_a_number_change_without_a_new_bsuid_keeps_the_bsuid_key(db_session: Session) -> None:
    customer(db_session, OLD_BSUID, OLD_PHONE, OLD_BSUID)
    moved = move_customer(db_session, IdentityChange(OLD_PHONE, None, NEW_PHONE, None), NOW)
    assert (moved.new_key, moved.old_keys) == (OLD_BSUID, ())
    contact = db_session.get(Contact, OLD_BSUID)
    assert contact is not None and contact.phone_number == NEW_PHONE
    assert owned(db_session, OLD_BSUID) == ALL_OF_ONE


def test_when_the_new_number_wrote_first_the_two_become_one_customer(db_session: Session) -> None:
    customer(db_session, OLD_PHONE, OLD_PHONE, None, touched=NOW - timedelta(hours=1))
    customer(db_session, NEW_PHONE, NEW_PHONE, None, touched=NOW)  # a newer conversation
    db_session.get(Contact, OLD_PHONE).profile_name = "Ann"  # known only to the old identity
    moved = move_customer(db_session, IdentityChange(OLD_PHONE, None, NEW_PHONE, None), NOW)
    assert moved.merged and owned(db_session, OLD_PHONE) == NOTHING
    both = {k: 2 * v for k, v in ALL_OF_ONE.items()} | {"contacts": 1, "conversation_state": 1}
    assert owned(db_session, NEW_PHONE) == both
    contact = db_session.get(Contact, NEW_PHONE)
    assert contact is not None and (contact.profile_name, contact.last_seen_at) == ("Ann", NOW)
    state = db_session.scalar(select(ConversationState).where(ConversationState.user_key == NEW_PHONE))
    assert state is not None and state.context == {"product": NEW_PHONE}  # the one touched last


def test_of_two_conversations_the_older_new_one_gives_way(db_session: Session) -> None:
    customer(db_session, OLD_PHONE, OLD_PHONE, None, touched=NOW)
    customer(db_session, NEW_PHONE, NEW_PHONE, None, touched=NOW - timedelta(hours=2))
    move_customer(db_session, IdentityChange(OLD_PHONE, None, NEW_PHONE, None), NOW)
    state = db_session.scalar(select(ConversationState).where(ConversationState.user_key == NEW_PHONE))
    assert state is not None and state.context == {"product": OLD_PHONE}


def test_an_unknown_previous_identity_moves_nothing_and_creates_nothing(db_session: Session) -> None:
    moved = move_customer(db_session, IdentityChange(OLD_PHONE, None, NEW_PHONE, None), NOW)
    assert moved.old_keys == () and moved.new_key is None
    assert owned(db_session, NEW_PHONE) == NOTHING


def test_opt_outs_windows_and_an_open_handoff_move_with_the_customer(db_session: Session) -> None:
    from conversation.handoff_models import Handoff
    from conversation.models import CustomerWindow

    customer(db_session, OLD_PHONE, OLD_PHONE, None)
    old = db_session.get(Contact, OLD_PHONE)
    assert old is not None
    old.opted_out_at, old.marketing_opted_out_at = NOW - timedelta(days=2), NOW - timedelta(days=1)
    db_session.add(CustomerWindow(user_key=OLD_PHONE, phone_number_id="PNID", last_inbound_at=NOW - timedelta(hours=1)))
    db_session.add(Handoff(user_key=OLD_PHONE, phone_number=OLD_PHONE, phone_number_id="PNID", requested_at=NOW))
    db_session.flush()
    move_customer(db_session, IdentityChange(OLD_PHONE, None, NEW_PHONE, None), NOW)
    db_session.expire_all()
    contact = db_session.get(Contact, NEW_PHONE)
    assert contact is not None
    assert (contact.opted_out_at, contact.marketing_opted_out_at) == (NOW - timedelta(days=2), NOW - timedelta(days=1))
    windows = db_session.execute(select(CustomerWindow.user_key, CustomerWindow.last_inbound_at)).all()
    assert [tuple(w) for w in windows] == [(NEW_PHONE, NOW - timedelta(hours=1))]  # still open: one customer
    [handoff] = db_session.scalars(select(Handoff)).all()
    assert (handoff.user_key, handoff.phone_number, handoff.released_at) == (NEW_PHONE, NEW_PHONE, None)


def test_a_merge_keeps_the_later_window_the_first_opt_out_and_one_open_handoff(db_session: Session) -> None:
    from conversation.handoff_models import Handoff
    from conversation.models import CustomerWindow

    customer(db_session, OLD_PHONE, OLD_PHONE, None, touched=NOW - timedelta(hours=2))
    customer(db_session, NEW_PHONE, NEW_PHONE, None)
    old, new = db_session.get(Contact, OLD_PHONE), db_session.get(Contact, NEW_PHONE)
    assert old is not None and new is not None
    old.opted_out_at, new.opted_out_at = NOW - timedelta(days=3), NOW - timedelta(days=1)
    for key, hours in ((OLD_PHONE, 2), (NEW_PHONE, 30)):
        db_session.add(
            CustomerWindow(user_key=key, phone_number_id="PNID", last_inbound_at=NOW - timedelta(hours=hours))
        )
        db_session.add(Handoff(user_key=key, phone_number=key, phone_number_id="PNID", requested_at=NOW))
    db_session.flush()
    moved = move_customer(db_session, IdentityChange(OLD_PHONE, None, NEW_PHONE, None), NOW)
    assert moved.merged
    db_session.expire_all()
    contact = db_session.get(Contact, NEW_PHONE)
    assert contact is not None and contact.opted_out_at == NOW - timedelta(days=3)
    windows = db_session.execute(select(CustomerWindow.user_key, CustomerWindow.last_inbound_at)).all()
    assert [tuple(w) for w in windows] == [(NEW_PHONE, NOW - timedelta(hours=2))]
    handoffs = db_session.execute(select(Handoff.user_key, Handoff.released_at, Handoff.release_reason)).all()
    assert sorted((tuple(h) for h in handoffs), key=str) == sorted(
        [(NEW_PHONE, None, None), (NEW_PHONE, NOW, "merged")], key=str
    )
