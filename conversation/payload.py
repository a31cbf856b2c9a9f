"""Meta's webhook JSON → engine events. Pure, and total: no input makes it raise.

Every entry × change × message/status is read on its own; a malformed item becomes a
``SkippedItem`` with the reason, and its siblings are still parsed (Meta batches up to
1,000 items in one POST). Field shapes are those of the Cloud API webhook: ``entry[].changes[].value``
with its ``metadata``, ``contacts``, ``messages`` and ``statuses``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conversation.events import EventKind, InboundEvent, StatusEvent, UserRef

WABA_OBJECT = "whatsapp_business_account"
MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
SIMPLE_KINDS: dict[str, EventKind] = {"location": "location", "contacts": "contacts", "reaction": "reaction"}
CHOICE_REPLIES = ("button_reply", "list_reply")

# Shapes are checked because these strings become database keys (column widths in
# conversation/models.py) and recipients of replies; junk must stop here, per item.
_BSUID = re.compile(r"[A-Za-z]{2}\.[A-Za-z0-9.]{1,150}")  # "US.1349…", "US.ENT.…"
_PHONE = re.compile(r"\+?[0-9]{5,20}")
_ID = re.compile(r"[\x21-\x7e]{1,256}")  # wamids: printable ASCII, no spaces
_NUMBER_ID = re.compile(r"[\x21-\x7e]{1,64}")  # phone_number_id
_RECIPIENT = re.compile(r"[\x21-\x7e]{1,160}")  # phone, BSUID or group id
_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_STATUS = re.compile(r"[a-z_]{1,16}")
_SECONDS = re.compile(r"[0-9]{1,11}")  # Unix seconds; 11 digits reaches year 5138
_NAME_MAX = 256


class _Bad(ValueError):
    """An item that cannot be read; becomes a SkippedItem with this message."""


@dataclass(frozen=True)
class SkippedItem:
    where: str  # e.g. "entry[0].changes[1].messages[3]"
    reason: str


@dataclass
class ParsedPayload:
    messages: list[InboundEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    ignored: bool = False  # the whole payload is not for the engine (not an error)
    reason: str = ""


def parse_payload(raw: str | bytes) -> ParsedPayload:
    """Every readable message and status of one webhook body; never raises.

    Messages come back in timestamp order per user (stable: ties keep Meta's order);
    different users keep the slots Meta gave them.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        document = json.loads(text)
    except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError is a ValueError
        return ParsedPayload(ignored=True, reason="not JSON (or not UTF-8)")
    if not isinstance(document, dict) or document.get("object") != WABA_OBJECT:
        return ParsedPayload(ignored=True, reason=f"object is not {WABA_OBJECT!r}")
    out = ParsedPayload()
    entries = document.get("entry")
    if not isinstance(entries, list):
        out.skipped.append(SkippedItem("entry", "entry is not a list"))
        return out
    fields: set[str] = set()
    for i, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            out.skipped.append(SkippedItem(f"entry[{i}]", "entry has no changes list"))
            continue
        for j, change in enumerate(changes):
            try:
                _parse_change(change, f"entry[{i}].changes[{j}]", out, fields)
            except Exception as exc:  # belt and braces; items already catch their own
                out.skipped.append(SkippedItem(f"entry[{i}].changes[{j}]", _unexpected(exc)))
    if fields and "messages" not in fields and not out.skipped:
        out.ignored = True
        out.reason = "no 'messages' change (fields: " + ", ".join(sorted(fields)[:5]) + ")"
    out.messages = _order_per_user(out.messages)
    return out


def _parse_change(change: Any, where: str, out: ParsedPayload, fields: set[str]) -> None:
    if not isinstance(change, dict):
        out.skipped.append(SkippedItem(where, "change is not an object"))
        return
    name = change.get("field")
    fields.add(name[:64] if isinstance(name, str) else "?")
    if name != "messages":
        return  # other subscriptions (account alerts, template updates): not for the engine
    value = change.get("value")
    if not isinstance(value, dict):
        out.skipped.append(SkippedItem(where, "change has no value object"))
        return
    messages, statuses = _list(value.get("messages")), _list(value.get("statuses"))
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    phone_number_id = number if isinstance(number, str) and _NUMBER_ID.fullmatch(number) else None
    if phone_number_id is None:
        # Without it no reply can be sent and no status attributed to a number.
        for kind, items in (("messages", messages), ("statuses", statuses)):
            for k in range(len(items)):
                out.skipped.append(
                    SkippedItem(f"{where}.{kind}[{k}]", "value.metadata.phone_number_id missing or invalid")
                )
        return
    contacts = [c for c in _list(value.get("contacts")) if isinstance(c, dict)]
    for k, item in enumerate(messages):
        try:
            out.messages.append(_message(item, contacts, phone_number_id))
        except Exception as exc:  # _Bad, or anything unforeseen: the item is reported
            out.skipped.append(SkippedItem(f"{where}.messages[{k}]", _reason(exc)))
    for k, item in enumerate(statuses):
        try:
            out.statuses.append(_status(item))
        except Exception as exc:
            out.skipped.append(SkippedItem(f"{where}.statuses[{k}]", _reason(exc)))


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, _Bad) else _unexpected(exc)


def _unexpected(exc: Exception) -> str:
    return f"unreadable ({exc.__class__.__name__})"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _text(value: Any) -> str | None:
    """Display text made storable: no NULs (Postgres refuses them), no lone surrogates."""
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _timestamp(value: Any) -> datetime:
    # Meta sends a string of digits; an int is tolerated. bool and float are junk.
    digits = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(digits, str) or not _SECONDS.fullmatch(digits):
        raise _Bad("timestamp missing or not Unix seconds")
    try:
        return datetime.fromtimestamp(int(digits), UTC)
    except (OverflowError, ValueError, OSError):
        raise _Bad("timestamp out of range") from None


def _phone(value: Any) -> str | None:
    return value.lstrip("+") if isinstance(value, str) and _PHONE.fullmatch(value) else None


def _bsuid(value: Any) -> str | None:
    return value if isinstance(value, str) and _BSUID.fullmatch(value) else None


def _user(item: dict[str, Any], contacts: list[dict[str, Any]]) -> UserRef:
    """The message's own ``from`` wins; the matching contact fills in the rest."""
    sender = item.get("from")
    # BSUID-only users: some payloads carry the BSUID in `from` instead of a phone.
    phone, user_id = _phone(sender), _bsuid(sender)
    contact = None
    if phone:
        contact = next((c for c in contacts if _phone(c.get("wa_id")) == phone), None)
    elif user_id:
        contact = next((c for c in contacts if c.get("user_id") == user_id), None)
    if contact is None and len(contacts) == 1:
        contact = contacts[0]
    name = None
    if contact is not None:
        phone = phone or _phone(contact.get("wa_id"))
        user_id = user_id or _bsuid(contact.get("user_id"))
        profile = contact.get("profile")
        if isinstance(profile, dict):
            name = _text(profile.get("name")) or _text(profile.get("username"))
    if not phone and not user_id:
        raise _Bad("no user identity (neither a BSUID nor a phone number)")
    return UserRef(user_id=user_id, phone=phone, profile_name=name[:_NAME_MAX] if name else None)


def _message(item: Any, contacts: list[dict[str, Any]], phone_number_id: str) -> InboundEvent:
    if not isinstance(item, dict):
        raise _Bad("message is not an object")
    wamid = _id(item.get("id"))
    if wamid is None:
        raise _Bad("id (wamid) missing or invalid")
    mtype = item.get("type")
    if not isinstance(mtype, str) or not _TYPE.fullmatch(mtype):
        raise _Bad("type missing or invalid")
    context = item.get("context")
    base: dict[str, Any] = {
        "wamid": wamid,
        "user": _user(item, contacts),
        "phone_number_id": phone_number_id,
        "timestamp": _timestamp(item.get("timestamp")),
        "message_type": mtype,
        "context_wamid": _id(context.get("id")) if isinstance(context, dict) else None,
        "raw": item,
    }
    body = item.get(mtype)
    body = body if isinstance(body, dict) else {}
    if mtype == "text":
        text = _text(body.get("body"))
        if text is None:
            raise _Bad("text message without text.body")
        return InboundEvent(kind="text", text=text, **base)
    if mtype == "interactive":
        reply_type = body.get("type")
        if reply_type not in CHOICE_REPLIES:
            return InboundEvent(kind="unsupported", **base)  # flow replies and the like
        reply = body.get(reply_type)
        if not isinstance(reply, dict) or not (choice_id := _text(reply.get("id"))):
            raise _Bad(f"interactive {reply_type} without an id")
        return InboundEvent(kind="choice", choice_id=choice_id, text=_text(reply.get("title")), **base)
    if mtype == "button":  # a template's quick-reply button
        label = _text(body.get("text"))
        choice_id = _text(body.get("payload")) or label
        if not choice_id:
            raise _Bad("button message without payload or text")
        return InboundEvent(kind="choice", choice_id=choice_id, text=label, **base)
    if mtype in MEDIA_TYPES:
        return InboundEvent(kind="media", text=_text(body.get("caption")), **base)
    if mtype == "reaction":
        # The emoji is absent when the user removes a reaction; message_id names the
        # message of ours reacted to, which is what context_wamid means elsewhere.
        base["context_wamid"] = base["context_wamid"] or _id(body.get("message_id"))
        return InboundEvent(kind="reaction", text=_text(body.get("emoji")), **base)
    if mtype in SIMPLE_KINDS:
        return InboundEvent(kind=SIMPLE_KINDS[mtype], **base)
    return InboundEvent(kind="unsupported", **base)


def _status(item: Any) -> StatusEvent:
    if not isinstance(item, dict):
        raise _Bad("status is not an object")
    wamid = _id(item.get("id"))
    if wamid is None:
        raise _Bad("id (wamid) missing or invalid")
    status = item.get("status")
    if not isinstance(status, str) or not _STATUS.fullmatch(status):
        raise _Bad("status missing or invalid")
    recipient = None
    for key in ("recipient_id", "recipient_user_id", "user_id"):
        value = item.get(key)
        if isinstance(value, str) and _RECIPIENT.fullmatch(value):
            recipient = _phone(value) or value
            break
    code = title = None
    errors = item.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if isinstance(first, dict):
        raw_code = first.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool) and abs(raw_code) < 2**31:
            code = raw_code
        elif isinstance(raw_code, str) and re.fullmatch(r"[0-9]{1,9}", raw_code):
            code = int(raw_code)
        title = _text(first.get("title"))
    return StatusEvent(wamid, status, _timestamp(item.get("timestamp")), recipient, code, title)


def _order_per_user(messages: list[InboundEvent]) -> list[InboundEvent]:
    """Sort each user's messages by timestamp, leaving every user in the slots Meta used."""
    by_user: dict[str, list[InboundEvent]] = {}
    for event in messages:
        by_user.setdefault(event.user.key, []).append(event)
    queues = {key: iter(sorted(events, key=lambda e: e.timestamp)) for key, events in by_user.items()}
    return [next(queues[event.user.key]) for event in messages]
