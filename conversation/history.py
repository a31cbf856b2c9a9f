"""What the pipeline recorded for one customer, read back: contact, conversation, inbound
log and replies. Plain reads taking a session; the simulator shows them.

A customer is named by what the caller knows of them (``user``): phone digits or a
BSUID. The engine files them under their BSUID once Meta sent one, so reads resolve
``user`` through the contact first.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from conversation.models import Contact, ConversationState, InboundMessage, OutboundMessage, SandboxMessage


def contact(session: Session, user: str) -> Contact | None:
    return session.get(Contact, user) or session.scalar(select(Contact).where(Contact.phone_number == user).limit(1))


def user_key(session: Session, user: str) -> str:
    """The key the engine files ``user`` under: their BSUID when Meta ever sent one."""
    found = contact(session, user)
    return found.user_key if found is not None else user


def recipients(session: Session, user: str) -> set[str]:
    """Every ``to``/``recipient`` the sender may have used for this customer (phones with +)."""
    found = contact(session, user)
    known = {user, found.phone_number, found.user_id, found.user_key} if found else {user}
    return {"+" + k if k.isdigit() else k for k in known if k}


def replies(session: Session, user: str, *, sandbox: bool, after_id: int = 0, limit: int = 200) -> list[dict]:
    """The bot's messages and read receipts for ``user``, oldest first, ids above ``after_id``.

    With the sandbox: what the sandbox Graph API received (proof the sender got through).
    Without it (live mode): the outbox rows, with their delivery status.
    """
    if sandbox:
        sandbox_rows = session.scalars(
            select(SandboxMessage)
            .where(SandboxMessage.recipient.in_(recipients(session, user)), SandboxMessage.id > after_id)
            .order_by(SandboxMessage.id)
            .limit(limit)
        )
        return [_reply(m.id, m.kind, m.wamid, m.body, m.created_at) for m in sandbox_rows]
    outbox_rows = session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.user_key == user_key(session, user), OutboundMessage.id > after_id)
        .order_by(OutboundMessage.id)
        .limit(limit)
    )
    return [_reply(r.id, r.kind, r.wamid, r.content, r.created_at, r.status, r.last_error) for r in outbox_rows]


def _reply(
    id_: int,
    kind: str,
    wamid: str | None,
    body: dict,
    at: datetime,
    status: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    content = {k: v for k, v in body.items() if k in {"type", "text", "interactive", "template"}}
    out: dict[str, Any] = {"id": id_, "dir": "out", "kind": kind, "wamid": wamid, "at": at.isoformat()}
    if kind == "mark_read":
        out["read"] = body.get("message_id")
    else:
        out["content"] = content
    if status is not None:
        out |= {"status": status, "error": error}
    return out


def inbound_text(item: dict[str, Any]) -> str:
    """What the customer's bubble shows for a recorded inbound message item."""
    kind = item.get("type")
    body = item.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "text":
        return str(body.get("body", ""))
    if kind == "interactive":
        reply = body.get(str(body.get("type")), {})
        return str(reply.get("title", "")) if isinstance(reply, dict) else ""
    if kind == "button":
        return str(body.get("text", ""))
    return f"[{kind}]"


def thread(session: Session, user: str, *, sandbox: bool) -> dict[str, Any]:
    """The whole thread as the pipeline recorded it: inbound log and replies, by time."""
    key = user_key(session, user)
    rows = session.scalars(
        select(InboundMessage).where(InboundMessage.user_key == key).order_by(InboundMessage.id.desc()).limit(200)
    ).all()
    inbound = [
        {
            "dir": "in",
            "wamid": r.wamid,
            "text": inbound_text(r.payload or {}),
            "outcome": r.outcome,
            "at": r.received_at.isoformat(),
        }
        for r in reversed(rows)
    ]
    out = replies(session, user, sandbox=sandbox, after_id=0, limit=1000)
    items = sorted(inbound + out, key=lambda i: (i["at"], i["dir"] == "out"))
    return {"items": items, "last_id": max((r["id"] for r in out), default=0)}


def last_business_number(session: Session, except_wamid_prefix: str) -> str | None:
    """The ``phone_number_id`` of the newest inbound message whose wamid does not start
    with ``except_wamid_prefix`` (simulated messages carry one), if any."""
    return session.scalar(
        select(InboundMessage.phone_number_id)
        .where(
            InboundMessage.phone_number_id.is_not(None),
            InboundMessage.wamid.not_like(except_wamid_prefix + "%"),
        )
        .order_by(InboundMessage.id.desc())
        .limit(1)
    )


def conversation_state(session: Session, user: str, now: datetime) -> dict[str, Any] | None:
    """The customer's conversation row as JSON-ready data (``live`` as of ``now``), or None."""
    c = ConversationState
    row = session.scalar(select(c).where(or_(c.user_key == user, c.phone_number == user, c.user_id == user)).limit(1))
    if row is None:
        return None
    return {
        "user_key": row.user_key,
        "template": row.conversation_flow,
        "step": row.current_step,
        "context": row.context or {},
        "expires_at": row.expires_at.isoformat(),
        "last_interaction": row.last_interaction.isoformat(),
        "live": row.expires_at > now,
        "language": row.language,
    }


def recorded_wamids(session: Session, wamids: Iterable[str]) -> set[str]:
    """Which of ``wamids`` a worker has recorded as inbound messages."""
    return set(session.scalars(select(InboundMessage.wamid).where(InboundMessage.wamid.in_(list(wamids)))))


def recent_contacts(session: Session, limit: int = 30) -> list[dict[str, Any]]:
    """The customers seen most recently: ``user`` (their key) and profile ``name``."""
    rows = session.scalars(select(Contact).order_by(Contact.last_seen_at.desc()).limit(limit))
    return [{"user": c.user_key, "name": c.profile_name} for c in rows]
