"""Webhook bodies in Meta's shape, signed and POSTed to a receiver as Meta would.

The one builder of a fake customer message, for the simulator, the terminal chat
(``flask --app webhook chat``) and ``send-test``. The receiver itself never imports it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from settings import Settings
from webhook.signature import sign

PHONE = re.compile(r"^\d{5,15}$")
BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$")
DEFAULT_PHONE_NUMBER_ID = "100000000000001"  # the business number simulated customers write to
DISPLAY_NUMBER = "15550000000"
POST_TIMEOUT = 10.0


class BadInput(ValueError):
    """The caller's fault; becomes a 400 with this text."""


@dataclass(frozen=True)
class Tap:
    """A tapped reply button (``kind="button"``) or list row (``kind="list"``)."""

    id: str
    title: str
    kind: str = "button"
    description: str | None = None
    context_wamid: str | None = None


def normalize_user(raw: Any) -> str:
    """Phone digits (``+`` and spaces dropped) or a BSUID; raises BadInput otherwise."""
    text = re.sub(r"[\s()-]", "", raw) if isinstance(raw, str) else ""
    text = text.lstrip("+")
    if PHONE.match(text) or BSUID.match(text):
        return text
    raise BadInput("user must be phone digits (e.g. 15550100123) or a BSUID (e.g. US.13491208655302741918)")


def inbound_webhook(
    user: str,
    *,
    text: str | None = None,
    tap: Tap | None = None,
    name: str = "Test User",
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    wamid: str | None = None,
) -> dict[str, Any]:
    """One customer message (a text, or ``tap``) in Meta's webhook shape.

    A BSUID ``user`` is a username user: Meta sends their ``user_id`` and withholds the
    phone (no ``wa_id``, no ``from``).
    """
    item: dict[str, Any] = {"id": wamid or new_wamid(), "timestamp": str(int(time.time()))}
    contact: dict[str, Any] = {"profile": {"name": name}}
    if BSUID.match(user):
        contact["user_id"] = user
    else:
        contact["wa_id"] = user
        item["from"] = user
    if tap is not None:
        reply_type = "list_reply" if tap.kind == "list" else "button_reply"
        reply: dict[str, Any] = {"id": tap.id, "title": tap.title}
        if tap.kind == "list" and tap.description:
            reply["description"] = tap.description
        item |= {"type": "interactive", "interactive": {"type": reply_type, reply_type: reply}}
        if tap.context_wamid:
            item["context"] = {"from": DISPLAY_NUMBER, "id": tap.context_wamid}
    else:
        item |= {"type": "text", "text": {"body": text or ""}}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id},
        "contacts": [contact],
        "messages": [item],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }


SIMULATED_WAMID_PREFIX = "wamid.SIM"


def new_wamid() -> str:
    """A message id marked as simulated (``wamid.SIM...``), never one Meta would send."""
    return SIMULATED_WAMID_PREFIX + uuid.uuid4().hex.upper()


def post_webhook(body: dict[str, Any], settings: Settings, url: str | None = None) -> requests.Response:
    """Sign ``body`` as Meta does and POST it to the receiver; raises requests errors."""
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, settings.app_secret)}
    return requests.post(url or f"{settings.public_url}/webhook", data=raw, headers=headers, timeout=POST_TIMEOUT)
