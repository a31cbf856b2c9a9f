"""Replaying a conversation transcript: customer inputs and the exact replies expected.

Replies are written compactly: a text is its body; reply buttons are
``body [Title|Title]``; a list is ``body <Button: Row|Row>``. An expectation starting with
``re:`` is a regular expression for the whole reply.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from conversation.events import InboundEvent, UserRef

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def describe(content: dict[str, Any]) -> str:
    if content["type"] == "text":
        return content["text"]["body"]
    inter = content["interactive"]
    body = inter["body"]["text"]
    if inter["type"] == "button":
        return f"{body} [{'|'.join(b['reply']['title'] for b in inter['action']['buttons'])}]"
    rows = [r["title"] for s in inter["action"]["sections"] for r in s["rows"]]
    return f"{body} <{inter['action']['button']}: {'|'.join(rows)}>"


def matches(expected: str, actual: str) -> bool:
    if expected.startswith("re:"):
        return re.fullmatch(expected[3:], actual, re.S) is not None
    return expected == actual


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((TRANSCRIPTS / name).read_text(encoding="utf-8"))


class Customer:
    """Builds the inbound events one customer would send, with fresh wamids and clock."""

    def __init__(self, user: UserRef, start: datetime | None = None) -> None:
        self.user = user
        self.clock = start or datetime.now(UTC)
        self.n = 0
        # Not id(self): Python reuses an id once an object is gone, and a later customer
        # would then send the same wamids, which the claim drops as redeliveries.
        self.key = uuid.uuid4().hex[:12]
        self.last_options: dict[str, str] = {}

    def event(self, turn: dict[str, Any]) -> InboundEvent:
        self.n += 1
        self.clock += timedelta(seconds=5)
        base = {
            "wamid": f"wamid.T{self.n}.{self.key}",
            "user": self.user,
            "phone_number_id": "PNID",
            "timestamp": self.clock,
        }
        if "send" in turn:
            return InboundEvent(kind="text", message_type="text", text=str(turn["send"]), **base)
        if "tap" in turn:
            option = str(turn["tap"])
            title = self.last_options.get(option, option)
            return InboundEvent(kind="choice", message_type="interactive", choice_id=option, text=title, **base)
        if "image" in turn:
            return InboundEvent(kind="media", message_type="image", **base)
        raise ValueError(f"unknown turn {turn}")

    def saw(self, replies: list[dict[str, Any]]) -> None:
        for content in replies:
            if content["type"] == "interactive":
                action = content["interactive"]["action"]
                for b in action.get("buttons", []):
                    self.last_options[b["reply"]["id"]] = b["reply"]["title"]
                for s in action.get("sections", []):
                    for r in s["rows"]:
                        self.last_options[r["id"]] = r["title"]
