"""``/admin/api/conversations`` (live state, end one) and ``/admin/api/outbound`` (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, jsonify
from sqlalchemy import or_, select
from werkzeug.exceptions import NotFound

from conversation.models import ConversationState, OutboundMessage, utcnow
from conversation.service import ConversationService
from webhook.console.admin.base import bp, int_arg, iso, scope, text_arg
from webhook.console.openapi import MAX_LIMIT, MAX_OFFSET


def _conversation(row: ConversationState, now: datetime) -> dict[str, Any]:
    return {
        "user_key": row.user_key,
        "phone_number": row.phone_number,
        "user_id": row.user_id,
        "template": row.conversation_flow,
        "step": row.current_step,
        "context": row.context or {},
        "live": row.expires_at > now,
        "last_interaction": iso(row.last_interaction),
        "expires_at": iso(row.expires_at),
        "created_at": iso(row.created_at),
    }


@bp.get("/conversations")
def list_conversations() -> Response:
    stmt = select(ConversationState).order_by(ConversationState.last_interaction.desc(), ConversationState.id)
    if template := text_arg("template"):
        stmt = stmt.where(ConversationState.conversation_flow == template)
    if step := text_arg("step"):
        stmt = stmt.where(ConversationState.current_step == step)
    if user := text_arg("user"):
        c = ConversationState
        stmt = stmt.where(or_(c.user_key == user, c.phone_number == user, c.user_id == user))
    stmt = stmt.limit(int_arg("limit", 100, 1, MAX_LIMIT)).offset(int_arg("offset", 0, 0, MAX_OFFSET))
    now = utcnow()
    with scope() as session:
        items = [_conversation(row, now) for row in session.scalars(stmt)]
    return jsonify({"conversations": items})


@bp.get("/conversations/<user>")
def get_conversation(user: str) -> Response:
    now = utcnow()
    with scope() as session:
        row = session.scalar(select(ConversationState).where(ConversationState.user_key == user))
        if row is None:
            raise NotFound(f"no conversation for {user}")
        body = _conversation(row, now)
        body["menu"] = ConversationService(session).get_current_menu(user) if body["live"] else []
    return jsonify(body)


@bp.post("/conversations/<user>/end")
def end_conversation(user: str) -> Response:
    with scope() as session:
        ended = ConversationService(session).end_conversation(user)
    if not ended:
        raise NotFound(f"no conversation for {user}")
    return jsonify({"user_key": user, "ended": True})


def _outbound(row: OutboundMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_key": row.user_key,
        "kind": row.kind,
        "status": row.status,
        "attempts": row.attempts,
        "wamid": row.wamid,
        "inbound_wamid": row.inbound_wamid,
        "origin": row.origin,
        "last_error_code": row.last_error_code,
        "last_error": row.last_error,
        "content": row.content,
        "status_at": iso(row.status_at),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


@bp.get("/outbound")
def outbound_status() -> Response:
    """By ``wamid`` (one message), by ``user`` (their latest), or the latest of all."""
    wamid, user = text_arg("wamid"), text_arg("user")
    stmt = select(OutboundMessage).order_by(OutboundMessage.id.desc())
    if wamid:
        stmt = stmt.where(OutboundMessage.wamid == wamid)
    if user:
        stmt = stmt.where(OutboundMessage.user_key == user)
    stmt = stmt.limit(int_arg("limit", 50, 1, MAX_LIMIT))
    with scope() as session:
        items = [_outbound(row) for row in session.scalars(stmt)]
    return jsonify({"messages": items})
