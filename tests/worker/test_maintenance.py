"""Beat's jobs, run as the worker runs them (task bodies called directly, real Postgres)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from conversation.db import session_scope
from conversation.models import ConversationState, InboundMessage, OutboundMessage, SandboxMessage, utcnow
from worker import tasks

pytestmark = pytest.mark.postgres


def conversations(n: int, expires_in: timedelta) -> list[str]:
    now = utcnow()
    keys = ["1555" + str(uuid.uuid4().int)[:7] for _ in range(n)]
    with session_scope() as s:
        for key in keys:
            s.add(
                ConversationState(
                    user_key=key, conversation_flow="main_menu", current_step="initial", context={},
                    last_interaction=now, expires_at=now + expires_in,
                )
            )  # fmt: skip
    return keys


def live(keys: list[str]) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).where(ConversationState.user_key.in_(keys)))


def test_expiry_removes_expired_conversations_only(engine) -> None:
    expired = conversations(5, timedelta(seconds=-1))
    alive = conversations(3, timedelta(hours=1))
    assert tasks.expire_conversations() >= 5
    assert live(expired) == 0 and live(alive) == 3


def test_two_beats_expiring_at_once_remove_each_conversation_once(engine) -> None:
    expired = conversations(40, timedelta(seconds=-1))
    alive = conversations(5, timedelta(hours=1))
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(tasks.expire_conversations())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 40 and live(expired) == 0 and live(alive) == 5


def test_prune_drops_old_logs_but_never_open_outbox_rows(engine) -> None:
    old = utcnow() - timedelta(days=400)
    key = "1555" + str(uuid.uuid4().int)[:7]
    with session_scope() as s:
        s.add(InboundMessage(wamid=f"wamid.{uuid.uuid4().hex}", user_key=key, message_type="text", payload={},
                             received_at=old))  # fmt: skip
        for status in ("read", "pending"):
            s.add(OutboundMessage(user_key=key, phone_number_id="P", kind="message", content={}, status=status,
                                  created_at=old, updated_at=old))  # fmt: skip
        s.add(SandboxMessage(wamid=f"wamid.{uuid.uuid4().hex}", phone_number_id="P", recipient=key, kind="message",
                             body={}, created_at=old))  # fmt: skip
    counts = tasks.prune_logs()
    assert counts["inbound"] >= 1 and counts["outbound"] >= 1 and counts["sandbox"] >= 1
    with session_scope() as s:
        left = s.scalars(select(OutboundMessage.status).where(OutboundMessage.user_key == key)).all()
    assert left == ["pending"]
