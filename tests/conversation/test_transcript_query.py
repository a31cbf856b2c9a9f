"""A customer's transcript from the message logs, on the real Postgres, after real turns."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversation import handoff
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.events import InboundEvent, UserRef
from conversation.models import InboundMessage, OutboundMessage
from conversation.service import ConversationService
from conversation.state import EngineConfig
from conversation.transcript import inbound_text, outbound_text, transcript
from conversation.turn import process_event
from templates.loader import load_directory
from tests.conversation.transcript import Customer

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def as_meta_sends_it(event: InboundEvent) -> InboundEvent:
    """The event with the message object Meta would have sent (what the log keeps)."""
    if event.kind == "text":
        raw = {"type": "text", "text": {"body": event.text}}
    else:
        reply = {"id": event.choice_id, "title": event.text}
        raw = {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": reply}}
    return replace(event, raw={"id": event.wamid, "from": event.user.phone, **raw})


def test_the_transcript_holds_what_the_bot_said_before_the_handoff_and_the_persons_reply(db_session: Session) -> None:
    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    ConversationService(db_session).upsert_templates(shipped.templates.values())
    user = UserRef(user_id=None, phone="15550003333", profile_name="Ann")
    ann = Customer(user, start=T0)
    for turn in ({"send": "help"}, {"tap": "faq"}):
        event = as_meta_sends_it(ann.event(turn))
        result = process_event(db_session, event, EngineConfig(), mark_as_read=True, now=event.timestamp)
        assert result.outbox_ids
        sent = db_session.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(result.outbox_ids)))
        ann.saw([row.content for row in sent if row.kind == "message"])
    # Handed off: what the customer writes now is only kept (the turn writer's part).
    handoff.request(db_session, handoff.Customer(user.key, user.phone, None, "PNID"), ann.clock)
    at = ann.clock + timedelta(minutes=1)
    payload = {"type": "text", "text": {"body": "anyone there?"}}
    db_session.add(
        InboundMessage(
            wamid="wamid.wait",
            user_key=user.key,
            phone_number_id="PNID",
            message_type="text",
            received_at=at,
            payload=payload,
        )
    )
    db_session.flush()
    handoff.reply(db_session, user.key, "Hi Ann, Carla here.", at + timedelta(minutes=1))

    lines = transcript(db_session, user.key)
    assert [line.direction for line in lines] == ["in", "out", "in", "out", "in", "out"]
    assert lines[0].text == "help" and lines[1].text.startswith("How can we help? [FAQ | Track my order")
    assert lines[2].text == "FAQ" and lines[3].text.startswith("Opening hours")
    assert [line.text for line in lines[4:]] == ["anyone there?", "Hi Ann, Carla here."]
    assert [line.at for line in lines] == sorted(line.at for line in lines)
    # read receipts are not messages, and the limit keeps the newest lines
    assert [line.text for line in transcript(db_session, user.key, limit=2)] == ["anyone there?", "Hi Ann, Carla here."]
    assert transcript(db_session, "15550000000") == []


@pytest.mark.parametrize(
    ("message_type", "payload", "expected"),
    [
        ("text", {"text": {"body": "hi"}}, "hi"),
        ("interactive", {"interactive": {"type": "list_reply", "list_reply": {"id": "faq", "title": "FAQ"}}}, "FAQ"),
        ("interactive", {"interactive": {"button_reply": {"id": "yes"}}}, "yes"),
        ("button", {"button": {"text": "Stop promotions", "payload": "stop"}}, "Stop promotions"),
        ("image", {"image": {"id": "1", "caption": "my receipt"}}, "[image] my receipt"),
        ("sticker", {"sticker": {"id": "1"}}, "[sticker]"),
    ],
)
def test_inbound_lines_read_as_a_person_would(message_type: str, payload: dict, expected: str) -> None:
    assert inbound_text(message_type, payload) == expected


def test_outbound_lines_show_buttons_and_templates() -> None:
    buttons = {"type": "interactive", "interactive": {"type": "button", "body": {"text": "Sure?"},
               "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]}}}  # fmt: skip
    assert outbound_text(buttons) == "Sure? [Yes]"
    assert outbound_text({"type": "template", "template": {"name": "order_ready"}}) == "[template order_ready]"
    assert outbound_text({"type": "text", "text": {"body": "ok"}}) == "ok"
