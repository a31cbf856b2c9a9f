"""What Meta sends: webhook bodies (messages, contacts, statuses) and the test credentials.

The stack signs with APP_SECRET; bench/ and the tests build their payloads here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

APP_SECRET = "e2e-app-secret"
VERIFY_TOKEN = "e2e-verify-token"
ACCESS_TOKEN = "e2e-access-token"
PHONE_NUMBER_ID = "100000000000001"


def new_phone() -> str:
    """A customer's phone no other test uses (555 numbers are never real)."""
    return f"1555{uuid.uuid4().int % 10**7:07d}"


def message(
    user: str,
    text: str | None = None,
    tap: tuple[str, str] | None = None,
    wamid: str | None = None,
    ts: int | None = None,
    bsuid: str | None = None,
) -> dict[str, Any]:
    """One inbound message item (phone ``user``; ``bsuid`` alone makes a username user)."""
    item: dict[str, Any] = {"id": wamid or f"wamid.E2E{uuid.uuid4().hex}", "timestamp": str(ts or int(time.time()))}
    if user:
        item["from"] = user
    if tap is not None:
        item["type"] = "interactive"
        item["interactive"] = {"type": "button_reply", "button_reply": {"id": tap[0], "title": tap[1]}}
    else:
        item["type"] = "text"
        item["text"] = {"body": text or ""}
    return item


def contact(user: str, bsuid: str | None = None, name: str = "Test User") -> dict[str, Any]:
    c: dict[str, Any] = {"profile": {"name": name}}
    if user:
        c["wa_id"] = user
    if bsuid:
        c["user_id"] = bsuid
    return c


def webhook(
    messages: Iterable[dict[str, Any]] = (),
    contacts: Iterable[dict[str, Any]] = (),
    statuses: Iterable[dict[str, Any]] = (),
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
    }
    if messages:
        value["messages"] = list(messages)
        value["contacts"] = list(contacts)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }


def combine(*payloads: dict[str, Any]) -> dict[str, Any]:
    """Several webhook bodies as one batched POST (entries side by side)."""
    return {"object": "whatsapp_business_account", "entry": [e for p in payloads for e in p["entry"]]}
