"""Recorded webhook payloads (``*.json`` beside this file) and what replaying needs of them.

A recording is a JSON list of webhook bodies in Meta's shape, or an object
``{"description": ..., "payloads": [...]}``. The same body twice is a duplicate
delivery; statuses may come in any order, and one body may batch several users.
Pure functions only: posting and waiting live in ``webhook/console/simulator.py``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DIR = Path(__file__).resolve().parent
NAME = re.compile(r"^[a-z0-9_]{1,64}$")
MAX_PAYLOADS = 500


def catalogue() -> list[dict[str, Any]]:
    """The shipped recordings: name, description, number of bodies."""
    out = []
    for path in sorted(DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        description = data.get("description", "") if isinstance(data, dict) else ""
        out.append({"name": path.stem, "description": description, "payloads": len(payloads_of(data))})
    return out


def load(name: str) -> Any:
    """A shipped recording by name; ValueError when there is none (never a path outside DIR)."""
    path = DIR / f"{name}.json"
    if not NAME.match(name) or not path.is_file():
        raise ValueError(f"no example recording named {name!r}")
    return json.loads(path.read_text(encoding="utf-8"))


def payloads_of(data: Any) -> list[dict[str, Any]]:
    """The webhook bodies of a recording; ValueError naming what is wrong."""
    payloads = data.get("payloads") if isinstance(data, dict) else data
    if not isinstance(payloads, list) or not payloads:
        raise ValueError("a recording is a non-empty JSON list of webhook bodies (or {payloads: [...]})")
    if len(payloads) > MAX_PAYLOADS:
        raise ValueError(f"a recording holds at most {MAX_PAYLOADS} webhook bodies, this one {len(payloads)}")
    for i, body in enumerate(payloads):
        if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
            raise ValueError(f"payloads[{i}] is not a webhook body (an object with an entry list)")
    return payloads


def _values(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for entry in body.get("entry") or []:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                yield value


def _items(value: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = value.get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def message_ids(body: dict[str, Any]) -> list[str]:
    """The wamids of the customer messages in ``body`` (statuses excluded)."""
    return [m["id"] for v in _values(body) for m in _items(v, "messages") if isinstance(m.get("id"), str)]


def users_of(body: dict[str, Any]) -> list[str]:
    """Who writes in ``body``: BSUID when the contact has one, else the phone."""
    users: list[str] = []
    for value in _values(body):
        contacts = _items(value, "contacts")
        for message in _items(value, "messages"):
            sender = message.get("from")
            contact = next((c for c in contacts if c.get("wa_id") == sender or c.get("user_id") == sender), None)
            if contact is None and len(contacts) == 1:
                contact = contacts[0]
            user = (contact or {}).get("user_id") or (contact or {}).get("wa_id") or sender
            if isinstance(user, str) and user not in users:
                users.append(user)
    return users


def refresh(body: dict[str, Any], tag: str, shift: int = 0) -> dict[str, Any]:
    """``body`` with every message id suffixed by ``tag`` and sent ``shift`` seconds later.

    Without the suffix a second replay would be all duplicates (the wamid is the dedupe key).
    The same id within one replay gets the same suffix, so recorded duplicates stay
    duplicates; statuses are left as recorded (they name messages of ours). The shift (see
    :func:`shift_to`) makes the recording happen now: a customer who wrote weeks ago is
    outside the 24-hour window, and no reply to them would go.
    """
    fresh = copy.deepcopy(body)
    for value in _values(fresh):
        for message in _items(value, "messages"):
            if isinstance(message.get("id"), str):
                message["id"] = f"{message['id']}.{tag}"[:256]
            stamp = message.get("timestamp")
            if shift and isinstance(stamp, str) and stamp.isdigit():
                message["timestamp"] = str(int(stamp) + shift)
    return fresh


def shift_to(bodies: list[dict[str, Any]], now: float) -> int:
    """Seconds that move the recording's latest message to ``now`` (0 when it is not earlier)."""
    stamps = [
        int(item["timestamp"])
        for body in bodies
        for value in _values(body)
        for item in _items(value, "messages")
        if isinstance(item.get("timestamp"), str) and item["timestamp"].isdigit()
    ]
    return max(int(now) - max(stamps), 0) if stamps else 0
