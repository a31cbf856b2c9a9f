"""A/B probe: a batch of customer turns with set-based statements, against ``process_event`` per message.

Not parley's code path (``conversation/turn.py`` is): a sketch measured by
``bench/probe_stream.py`` (design b4). It runs the same pure engine per message, in order
per customer, but reads and writes the whole batch's rows with one statement per kind of
row: one claim of every wamid, one upsert locking every contact (in a fixed order, so two
consumers never deadlock), one read of every live conversation and open handoff, then one
write each for conversations, outbox rows and outcomes. What it does not cover it hands to
``process_event`` one message at a time, as today: a batch with an identity change, and any
batch that raised (each message then under its own savepoint, so a poison message fails
alone).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from conversation import consent, handoff_turn, window
from conversation import turn_statements as sql
from conversation.actions import Actions
from conversation.engine import handle
from conversation.events import InboundEvent, UserRef
from conversation.handoff_models import Handoff
from conversation.jsonb import jsonb_safe
from conversation.kinds import Role, opens_window, reads, role
from conversation.models import ConversationState, InboundMessage, Submission, utcnow
from conversation.state import (
    ConsentChanged,
    CustomerState,
    Ended,
    EngineConfig,
    Entered,
    FallbackSent,
    HandOff,
    Submit,
)
from conversation.template_cache import TEMPLATE_CACHE
from conversation.turn import InboundResult, outbound_row, process_event, snapshot, state_row

log = logging.getLogger(__name__)

_CLAIM = text(
    "INSERT INTO inbound_messages"
    " (wamid, user_key, phone_number_id, message_type, sent_at, received_at, payload, refers_to, outcome)"
    " SELECT w, k, n, t, s, :now, CAST(p AS jsonb), r, 'processing' FROM unnest("
    "CAST(:w AS text[]), CAST(:k AS text[]), CAST(:n AS text[]), CAST(:t AS text[]),"
    " CAST(:s AS timestamptz[]), CAST(:p AS text[]), CAST(:r AS text[])) AS v(w, k, n, t, s, p, r)"
    " ON CONFLICT (wamid) DO NOTHING RETURNING id, wamid"
).bindparams(bindparam("now", type_=InboundMessage.received_at.type))
_CONTACTS = text(
    "INSERT INTO contacts (user_key, phone_number, user_id, profile_name, last_seen_at, pair_limit_hits)"
    " SELECT k, ph, u, pn, :now, 0 FROM unnest(CAST(:k AS text[]), CAST(:ph AS text[]), CAST(:u AS text[]),"
    " CAST(:pn AS text[])) AS v(k, ph, u, pn)"
    " ON CONFLICT (user_key) DO UPDATE SET last_seen_at = excluded.last_seen_at,"
    " phone_number = coalesce(excluded.phone_number, contacts.phone_number),"
    " user_id = coalesce(excluded.user_id, contacts.user_id),"
    " profile_name = coalesce(excluded.profile_name, contacts.profile_name)"
    " RETURNING user_key, last_fallback_at, profile_name, language"
).bindparams(bindparam("now", type_=InboundMessage.received_at.type))
_WINDOWS = text(
    "INSERT INTO customer_windows (user_key, phone_number_id, last_inbound_at)"
    " SELECT * FROM unnest(CAST(:k AS text[]), CAST(:n AS text[]), CAST(:at AS timestamptz[]))"
    " ON CONFLICT (user_key, phone_number_id) DO UPDATE SET last_inbound_at = excluded.last_inbound_at"
    " WHERE customer_windows.last_inbound_at < excluded.last_inbound_at"
)
_STATES = text(
    "SELECT user_key, conversation_flow, current_step, context, expires_at, last_interaction, language"
    " FROM conversation_state WHERE user_key = ANY(CAST(:k AS text[])) FOR UPDATE"
).columns(
    ConversationState.user_key,
    ConversationState.conversation_flow,
    ConversationState.current_step,
    ConversationState.context,
    ConversationState.expires_at,
    ConversationState.last_interaction,
    ConversationState.language,
)
_HANDED_OFF = text(
    "SELECT user_key FROM handoffs WHERE user_key = ANY(CAST(:k AS text[])) AND released_at IS NULL"
).columns(Handoff.user_key)
_OUTCOMES = text(
    "UPDATE inbound_messages AS m SET outcome = v.o FROM unnest(CAST(:i AS bigint[]), CAST(:o AS text[])) AS v(i, o)"
    " WHERE m.id = v.i"
)


@dataclass
class _Customer:
    state: CustomerState
    had_row: bool
    user: UserRef
    contact_language: str | None


def process_batch(
    session: Session,
    events: Sequence[InboundEvent],
    config: EngineConfig,
    mark_as_read: bool = True,
    now: datetime | None = None,
) -> list[InboundResult]:
    """Every message of the batch, in order per customer, inside the caller's transaction.

    One result per distinct wamid: the redeliveries (``duplicate``) first, then the new
    messages in the batch's order (one by one, every result in the batch's order)."""
    now = now or utcnow()
    if any(role(e.kind) is Role.IDENTITY for e in events):
        return _one_by_one(session, events, config, mark_as_read, now)
    savepoint = session.begin_nested()
    try:
        results = _set_based(session, events, config, mark_as_read, now)
    except Exception:
        savepoint.rollback()
        log.warning("batch failed; its messages are handled one by one", exc_info=True)
        return _one_by_one(session, events, config, mark_as_read, now)
    savepoint.commit()
    return results


def _one_by_one(
    session: Session, events: Sequence[InboundEvent], config: EngineConfig, mark_as_read: bool, now: datetime
) -> list[InboundResult]:
    results = []
    for event in events:
        savepoint = session.begin_nested()
        try:
            results.append(process_event(session, event, config, mark_as_read=mark_as_read, now=now))
        except Exception:
            savepoint.rollback()
            log.exception("message failed")  # the real design dead-letters it here
            continue
        savepoint.commit()
    return results


def _set_based(
    session: Session, events: Sequence[InboundEvent], config: EngineConfig, mark_as_read: bool, now: datetime
) -> list[InboundResult]:
    conn = session.connection()
    first: dict[str, InboundEvent] = {}
    for event in events:
        first.setdefault(event.wamid, event)
    todo = list(first.values())
    claim = {
        "now": now,
        "w": [e.wamid for e in todo],
        "k": [e.user.key for e in todo],
        "n": [e.phone_number_id for e in todo],
        "t": [e.message_type for e in todo],
        "s": [e.timestamp for e in todo],
        "p": [_json(e.raw) for e in todo],
        "r": [e.target_wamid or (e.context_wamid if e.kind == "reaction" else None) for e in todo],
    }
    claimed = {row.wamid: row.id for row in conn.execute(_CLAIM, claim)}
    fresh = [e for e in todo if e.wamid in claimed]
    results = [InboundResult(duplicate=True, user_key=e.user.key) for e in todo if e.wamid not in claimed]
    if not fresh:
        return results
    last_of: dict[str, InboundEvent] = {e.user.key: e for e in fresh}
    keys = sorted(last_of)  # the lock order
    contacts = {
        row.user_key: row
        for row in conn.execute(
            _CONTACTS,
            {
                "now": now,
                "k": keys,
                "ph": [last_of[k].user.phone or None for k in keys],
                "u": [last_of[k].user.user_id or None for k in keys],
                "pn": [last_of[k].user.profile_name or None for k in keys],
            },
        )
    }
    opened: dict[tuple[str, str], datetime] = {}
    for e in fresh:
        if opens_window(e.kind):
            at = window.opened_at(e.timestamp, now)
            key = (e.user.key, e.phone_number_id)
            opened[key] = max(at, opened.get(key, at))
    if opened:
        pairs = sorted(opened)
        conn.execute(
            _WINDOWS, {"k": [p[0] for p in pairs], "n": [p[1] for p in pairs], "at": [opened[p] for p in pairs]}
        )
    states = {row.user_key: row for row in conn.execute(_STATES, {"k": keys})}
    handed = set(conn.execute(_HANDED_OFF, {"k": keys}).scalars())
    templates = TEMPLATE_CACHE.get(session)
    actions = Actions(session, catalogues=config.catalogues)
    customers: dict[str, _Customer] = {}
    for k in keys:
        row, contact = states.get(k), contacts[k]
        customers[k] = _Customer(
            CustomerState(
                conversation=snapshot(row) if row is not None else None,
                last_fallback_at=contact.last_fallback_at,
                profile_name=contact.profile_name,
                language=contact.language,
                handed_off=k in handed,
            ),
            row is not None,
            last_of[k].user,
            contact.language,
        )
    outbox: list[dict[str, Any]] = []
    owners: list[int] = []  # for each outbox row, its message's index in ``fresh``
    events_rows: list[dict[str, Any]] = []
    outcomes: list[str] = []
    for index, event in enumerate(fresh):
        c = customers[event.user.key]
        result = handle(templates, c.state, event, now, config, actions)
        handoff_turn.carry_out(session, event, result, now, False)
        for effect in result.effects:
            if isinstance(effect, Submit):
                session.add(
                    Submission(
                        id=uuid.uuid4(),
                        template_name=effect.template,
                        user_key=event.user.key,
                        phone_number=event.user.phone,
                        user_id=event.user.user_id,
                        answers=effect.answers,
                        language=effect.language,
                        created_at=now,
                    )
                )
            elif isinstance(effect, FallbackSent):
                c.state = replace(c.state, last_fallback_at=now)
            elif isinstance(effect, ConsentChanged):
                consent.apply_change(session, event.user.key, effect.change, now)
            elif isinstance(effect, Entered | Ended):
                what = "entered" if isinstance(effect, Entered) else effect.reason
                events_rows.append(
                    {
                        "user_key": event.user.key,
                        "template_name": effect.template,
                        "step": effect.step,
                        "event": what,
                        "created_at": now,
                    }
                )
        c.state = replace(c.state, conversation=result.conversation, language=result.language)
        if _changes_handoff(result):
            c.state = replace(c.state, handed_off=handoff_turn.is_handed_off(session, event.user.key))
        if mark_as_read and reads(event.kind, result.outcome):
            outbox.append(outbound_row(event, "mark_read", {"message_id": event.wamid}, now))
            owners.append(index)
        for content in result.messages:
            outbox.append(outbound_row(event, "message", content, now))
            owners.append(index)
        outcomes.append(result.outcome)
    _write_states(conn, customers, templates, now)
    if events_rows:
        conn.execute(sql.EVENT_INSERT, events_rows).all()
    ids = list(conn.execute(sql.OUTBOX_INSERT, outbox).scalars()) if outbox else []
    conn.execute(_OUTCOMES, {"i": [claimed[e.wamid] for e in fresh], "o": outcomes})
    per_message: list[list[int]] = [[] for _ in fresh]
    for owner, row_id in zip(owners, ids, strict=True):
        per_message[owner].append(row_id)
    results.extend(InboundResult(False, e.user.key, outcomes[i], per_message[i]) for i, e in enumerate(fresh))
    return results


def _changes_handoff(result: Any) -> bool:
    """Whether the message opened or ended a handoff: the customer's next message must see it."""
    return result.outcome == handoff_turn.OPTED_OUT or any(isinstance(e, HandOff) for e in result.effects)


def _write_states(conn: Any, customers: dict[str, _Customer], templates: Any, now: datetime) -> None:
    updates, inserts, deletes, languages, fallbacks = [], [], [], [], []
    for k, c in customers.items():
        conv = c.state.conversation
        if conv is None:
            if c.had_row:
                deletes.append({"k": k})
        else:
            (updates if c.had_row else inserts).append(state_row(c.user, conv, templates, now))
        if c.state.language != c.contact_language:
            languages.append({"k": k, "language": c.state.language})
        if c.state.last_fallback_at == now:
            fallbacks.append({"k": k, "now": now})
    for stmt, rows in (
        (sql.STATE_DELETE, deletes),
        (sql.STATE_UPDATE, updates),
        (sql.STATE_INSERT, inserts),
        (sql.SET_LANGUAGE, languages),
        (sql.SET_FALLBACK, fallbacks),
    ):
        if rows:
            conn.execute(stmt, rows)


def _json(raw: Any) -> str:
    import json

    return json.dumps(jsonb_safe(raw))
