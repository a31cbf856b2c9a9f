"""The statements of a customer's turn (``turn.py``), built once at import.

Each is cacheable by SQLAlchemy, so a worker compiles it once per process rather than
once per message; ``tests/worker/test_statement_cache.py`` pins that.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, text, update

from conversation.models import Contact, ConversationEvent, ConversationState, InboundMessage, OutboundMessage

# The claim and the contact upsert. Written as text because SQLAlchemy 2.0 cannot cache a
# dialect ``insert()`` with ON CONFLICT (postgresql.Insert sets ``inherit_cache = False``):
# built that way, both were compiled again for every message (~10 % of a worker's busy
# time). SQLite and Postgres share this syntax; the column types bind the values.
CLAIM = (
    text(
        "INSERT INTO inbound_messages"
        " (wamid, user_key, phone_number_id, message_type, sent_at, received_at, payload, refers_to, outcome)"
        " VALUES (:wamid, :user_key, :phone_number_id, :message_type, :sent_at, :now, :payload, :refers_to,"
        " 'processing')"
        " ON CONFLICT (wamid) DO NOTHING RETURNING id"
    )
    .bindparams(
        bindparam("sent_at", type_=InboundMessage.sent_at.type),
        bindparam("now", type_=InboundMessage.received_at.type),
        bindparam("payload", type_=InboundMessage.payload.type),
    )
    .columns(InboundMessage.id)
)
CONTACT_UPSERT = (
    text(
        "INSERT INTO contacts (user_key, phone_number, user_id, profile_name, last_seen_at, pair_limit_hits)"
        " VALUES (:user_key, :phone, :user_id, :profile_name, :now, 0)"
        " ON CONFLICT (user_key) DO UPDATE SET last_seen_at = excluded.last_seen_at,"
        # What this message does not say (a phone hidden behind a username) stays as known.
        " phone_number = coalesce(excluded.phone_number, contacts.phone_number),"
        " user_id = coalesce(excluded.user_id, contacts.user_id),"
        " profile_name = coalesce(excluded.profile_name, contacts.profile_name)"
        " RETURNING last_fallback_at, profile_name, language"
    )
    .bindparams(bindparam("now", type_=Contact.last_seen_at.type))
    .columns(Contact.last_fallback_at, Contact.profile_name, Contact.language)
)
# The business writes first (a notification): lock the customer's row as the inbound path
# does, without counting it as the customer being seen.
RECIPIENT_UPSERT = text(
    "INSERT INTO contacts (user_key, phone_number, user_id, pair_limit_hits) VALUES (:user_key, :phone, :user_id, 0)"
    " ON CONFLICT (user_key) DO UPDATE SET phone_number = coalesce(contacts.phone_number, excluded.phone_number),"
    " user_id = coalesce(contacts.user_id, excluded.user_id)"
    " RETURNING opted_out_at"
).columns(Contact.opted_out_at)
SET_OUTCOME = (
    update(InboundMessage).where(InboundMessage.id == bindparam("inbound_id")).values(outcome=bindparam("outcome"))
)
SET_FAILED = (
    update(InboundMessage)
    .where(InboundMessage.wamid == bindparam("w"))
    .values(outcome="failed", error=bindparam("why"))
)

_state = ConversationState.__table__
STATE_FOR_UPDATE = (
    select(
        ConversationState.conversation_flow,
        ConversationState.current_step,
        ConversationState.context,
        ConversationState.expires_at,
        ConversationState.last_interaction,
        ConversationState.language,
    )
    .where(ConversationState.user_key == bindparam("k"))
    .with_for_update()
)
STATE_DELETE = _state.delete().where(_state.c.user_key == bindparam("k"))
_STATE_FIELDS = {
    "conversation_flow": bindparam("flow"),
    "current_step": bindparam("step"),
    "context": bindparam("context", type_=_state.c.context.type),
    "last_interaction": bindparam("last", type_=_state.c.last_interaction.type),
    "expires_at": bindparam("expires", type_=_state.c.expires_at.type),
    "remind_at": bindparam("remind", type_=_state.c.remind_at.type),
    "updated_at": bindparam("now", type_=_state.c.updated_at.type),
    "language": bindparam("language"),
}
STATE_INSERT = _state.insert().values(
    id=bindparam("id", type_=_state.c.id.type),
    user_key=bindparam("k"),
    phone_number=bindparam("phone"),
    user_id=bindparam("user_id"),
    created_at=bindparam("now", type_=_state.c.created_at.type),
    **_STATE_FIELDS,
)
STATE_UPDATE = (
    _state.update()
    .where(_state.c.user_key == bindparam("k"))
    .values(
        # A message that does not carry the phone (a username user) keeps the one known.
        phone_number=func.coalesce(bindparam("phone", type_=_state.c.phone_number.type), _state.c.phone_number),
        user_id=func.coalesce(bindparam("user_id", type_=_state.c.user_id.type), _state.c.user_id),
        **_STATE_FIELDS,
    )
)
SET_LANGUAGE = update(Contact).where(Contact.user_key == bindparam("k")).values(language=bindparam("language"))
STATE_SET_LANGUAGE = _state.update().where(_state.c.user_key == bindparam("k")).values(language=bindparam("language"))
SET_FALLBACK = update(Contact).where(Contact.user_key == bindparam("k")).values(last_fallback_at=bindparam("now"))
EVENT_INSERT = ConversationEvent.__table__.insert().returning(ConversationEvent.id, sort_by_parameter_order=True)
OUTBOX_INSERT = OutboundMessage.__table__.insert().returning(OutboundMessage.id, sort_by_parameter_order=True)
