"""A customer's transcript: what they wrote and what parley sent them, in order.

Read from the message logs (``inbound_messages``, and ``outbound_messages`` rows of kind
``message``), so it includes what the bot said before a handoff and what a person wrote
after it. Messages past the logs' retention are gone from it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation.models import InboundMessage, OutboundMessage

MAX_LINES = 200


@dataclass(frozen=True)
class Line:
    direction: str  # in | out
    text: str
    at: datetime


def inbound_text(message_type: str, payload: dict[str, Any]) -> str:
    """What the customer sent, as a person would read it in an inbox."""
    body = payload.get(message_type)
    body = body if isinstance(body, dict) else {}
    if message_type == "text":
        return str(body.get("body") or "")
    if message_type == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or {}
        return str(reply.get("title") or reply.get("id") or "[interactive]")
    if message_type == "button":
        return str(body.get("text") or body.get("payload") or "[button]")
    caption = body.get("caption")
    return f"[{message_type}] {caption}" if caption else f"[{message_type}]"


def outbound_text(content: dict[str, Any]) -> str:
    """What parley sent: the text, an interactive message's body and options, or a template's name."""
    kind = content.get("type")
    if kind == "text":
        return str((content.get("text") or {}).get("body") or "")
    if kind == "interactive":
        interactive = content.get("interactive") or {}
        text = str((interactive.get("body") or {}).get("text") or "")
        action = interactive.get("action") or {}
        titles = [b.get("reply", {}).get("title", "") for b in action.get("buttons", [])]
        titles += [r.get("title", "") for s in action.get("sections", []) for r in s.get("rows", [])]
        return f"{text} [{' | '.join(t for t in titles if t)}]" if any(titles) else text
    if kind == "template":
        return f"[template {(content.get('template') or {}).get('name', '')}]"
    return f"[{kind}]"


def transcript(session: Session, user_key: str, limit: int = MAX_LINES) -> list[Line]:
    """The customer's last ``limit`` messages both ways, oldest first.

    Inbound lines are timed by arrival and outbound ones by when they were written to the
    outbox: the order the customer's turns happened in, whatever Meta's clocks say.
    """
    inbound = session.execute(
        select(InboundMessage.id, InboundMessage.message_type, InboundMessage.payload, InboundMessage.received_at)
        .where(InboundMessage.user_key == user_key)
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(limit)
    ).all()
    outbound = session.execute(
        select(OutboundMessage.id, OutboundMessage.content, OutboundMessage.created_at)
        .where(OutboundMessage.user_key == user_key, OutboundMessage.kind == "message")
        .order_by(OutboundMessage.created_at.desc(), OutboundMessage.id.desc())
        .limit(limit)
    ).all()
    # A reply is written in the same transaction as the message it answers, so at equal
    # times the inbound line comes first.
    lines = [(r.received_at, 0, r.id, Line("in", inbound_text(r.message_type, r.payload or {}), r.received_at))
             for r in inbound]  # fmt: skip
    lines += [(r.created_at, 1, r.id, Line("out", outbound_text(r.content or {}), r.created_at)) for r in outbound]
    lines.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in lines[-limit:]]
