"""Meta's webhook JSON → engine events. Pure, and total: no input makes it raise.

Every entry × change × message/status is read on its own; a malformed item becomes a
``SkippedItem`` with the reason, and its siblings are still parsed (Meta batches up to
1,000 items in one POST).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conversation.events import EventKind, InboundEvent, StatusEvent, UserRef

MEDIA_TYPES = {"image", "audio", "video", "document", "sticker"}
SIMPLE_KINDS: dict[str, EventKind] = {"location": "location", "contacts": "contacts", "reaction": "reaction"}
_BSUID = re.compile(r"^[A-Za-z]{2}\.[A-Za-z0-9.]{1,140}$")
_PHONE = re.compile(r"^\+?\d{5,20}$")


class _Bad(ValueError):
    """An item that cannot be read; becomes a SkippedItem."""


@dataclass(frozen=True)
class SkippedItem:
    where: str
    reason: str


@dataclass
class ParsedPayload:
    messages: list[InboundEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    ignored: bool = False
    reason: str = ""


def parse_payload(raw: str | bytes) -> ParsedPayload:
    out = ParsedPayload()
    try:
        document = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return ParsedPayload(ignored=True, reason="not JSON")
    if not isinstance(document, dict) or document.get("object") != "whatsapp_business_account":
        return ParsedPayload(ignored=True, reason="not a whatsapp_business_account payload")
    entries = document.get("entry")
    if not isinstance(entries, list):
        return ParsedPayload(ignored=True, reason="no entry list")
    for i, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            out.skipped.append(SkippedItem(f"entry[{i}]", "entry has no changes list"))
            continue
        for j, change in enumerate(changes):
            _parse_change(change, f"entry[{i}].changes[{j}]", out)
    # One user's messages in timestamp order; the sort is stable, so ties keep Meta's order.
    out.messages.sort(key=lambda e: e.timestamp)
    return out


def _parse_change(change: Any, where: str, out: ParsedPayload) -> None:
    if not isinstance(change, dict):
        out.skipped.append(SkippedItem(where, "change is not an object"))
        return
    if change.get("field") != "messages":
        return  # other subscriptions (account alerts, template updates): not for the engine
    value = change.get("value")
    if not isinstance(value, dict):
        out.skipped.append(SkippedItem(where, "change has no value object"))
        return
    metadata = value.get("metadata")
    phone_number_id = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    messages, statuses = value.get("messages"), value.get("statuses")
    if not isinstance(phone_number_id, str | int) or isinstance(phone_number_id, bool) or not str(phone_number_id):
        if messages or statuses:
            out.skipped.append(SkippedItem(where, "metadata.phone_number_id missing: nowhere to reply from"))
        return
    contacts = value.get("contacts") if isinstance(value.get("contacts"), list) else []
    for k, item in enumerate(messages if isinstance(messages, list) else []):
        try:
            out.messages.append(_message(item, contacts, str(phone_number_id)))
        except _Bad as exc:
            out.skipped.append(SkippedItem(f"{where}.messages[{k}]", str(exc)))
        except Exception as exc:  # belt and braces: nothing escapes, the item is reported
            out.skipped.append(SkippedItem(f"{where}.messages[{k}]", f"unreadable: {exc.__class__.__name__}"))
    for k, item in enumerate(statuses if isinstance(statuses, list) else []):
        try:
            out.statuses.append(_status(item))
        except _Bad as exc:
            out.skipped.append(SkippedItem(f"{where}.statuses[{k}]", str(exc)))
        except Exception as exc:
            out.skipped.append(SkippedItem(f"{where}.statuses[{k}]", f"unreadable: {exc.__class__.__name__}"))


def _str(obj: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = obj.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if required:
        raise _Bad(f"{key} missing or not a string")
    return None


def _timestamp(obj: dict[str, Any]) -> datetime:
    raw = obj.get("timestamp")
    try:
        seconds = int(raw)  # type: ignore[arg-type]
        return datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise _Bad("timestamp missing or not Unix seconds") from None


def _user(item: dict[str, Any], contacts: list[Any]) -> UserRef:
    sender = _str(item, "from", required=False)
    phone = sender if sender and _PHONE.match(sender) else None
    user_id = sender if sender and not phone and _BSUID.match(sender) else None
    candidates = [c for c in contacts if isinstance(c, dict)]
    contact = next((c for c in candidates if sender and c.get("wa_id") == sender), None)
    if contact is None and len(candidates) == 1:
        contact = candidates[0]
    name = None
    if contact is not None:
        wa_id = _str(contact, "wa_id", required=False)
        phone = phone or (wa_id if wa_id and _PHONE.match(wa_id) else None)
        bsuid = _str(contact, "user_id", required=False)
        user_id = bsuid if bsuid and _BSUID.match(bsuid) else user_id
        profile = contact.get("profile")
        if isinstance(profile, dict) and isinstance(profile.get("name"), str):
            name = profile["name"][:256]
    if not phone and not user_id:
        raise _Bad("no user identity (neither BSUID nor phone)")
    return UserRef(user_id=user_id, phone=phone.lstrip("+") if phone else None, profile_name=name)


def _message(item: Any, contacts: list[Any], phone_number_id: str) -> InboundEvent:
    if not isinstance(item, dict):
        raise _Bad("message is not an object")
    wamid = _str(item, "id")
    assert wamid is not None
    mtype = _str(item, "type", required=False) or "unsupported"
    context = item.get("context")
    context_wamid = _str(context, "id", required=False) if isinstance(context, dict) else None
    base = {
        "wamid": wamid[:256],
        "user": _user(item, contacts),
        "phone_number_id": phone_number_id,
        "timestamp": _timestamp(item),
        "message_type": mtype[:32],
        "context_wamid": context_wamid,
        "raw": item,
    }
    body = item.get(mtype)
    if mtype == "text":
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise _Bad("text message without text.body")
        return InboundEvent(kind="text", text=text, **base)
    if mtype == "interactive":
        if not isinstance(body, dict):
            raise _Bad("interactive message without its object")
        reply = body.get(str(body.get("type")))
        if not isinstance(reply, dict):
            return InboundEvent(kind="unsupported", **base)
        choice_id = _str(reply, "id")
        title = _str(reply, "title", required=False)
        return InboundEvent(kind="choice", choice_id=choice_id, text=title, **base)
    if mtype == "button":
        if not isinstance(body, dict):
            raise _Bad("button message without its object")
        payload = _str(body, "payload", required=False) or _str(body, "text")
        return InboundEvent(kind="choice", choice_id=payload, text=_str(body, "text", required=False), **base)
    if mtype in MEDIA_TYPES:
        caption = body.get("caption") if isinstance(body, dict) else None
        return InboundEvent(kind="media", text=caption if isinstance(caption, str) else None, **base)
    if mtype in SIMPLE_KINDS:
        return InboundEvent(kind=SIMPLE_KINDS[mtype], **base)
    return InboundEvent(kind="unsupported", **base)


def _status(item: Any) -> StatusEvent:
    if not isinstance(item, dict):
        raise _Bad("status is not an object")
    wamid = _str(item, "id")
    status = _str(item, "status")
    assert wamid is not None and status is not None
    code = title = None
    errors = item.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        raw_code = errors[0].get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        title = errors[0].get("title") if isinstance(errors[0].get("title"), str) else None
    recipient = _str(item, "recipient_id", required=False) or _str(item, "recipient_user_id", required=False)
    return StatusEvent(wamid, status, _timestamp(item), recipient, code, title)
