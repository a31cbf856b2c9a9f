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

from conversation.account_changes import (
    PREFERENCE_FIELD,
    TEMPLATE_FIELDS,
    PreferenceChange,
    TemplateUpdate,
    preference_value,
    read_template_update,
)
from conversation.events import InboundEvent, StatusEvent, UserRef
from conversation.kinds import NESTED, lookup
from conversation.message_bodies import (
    Unreadable,
    bsuid,
    clean_text,
    phone,
    read_call_permission,
    read_edit,
    read_flow_reply,
    read_identity,
    read_order,
    read_revoke,
    wamid,
)

WABA_OBJECT = "whatsapp_business_account"

# Shapes are checked because these strings become database keys and recipients of
# replies; the wamid, phone and BSUID shapes are message_bodies.py's.
_NUMBER_ID = re.compile(r"[\x21-\x7e]{1,64}")  # phone_number_id
_RECIPIENT = re.compile(r"[\x21-\x7e]{1,160}")  # phone, BSUID or group id
_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_STATUS = re.compile(r"[a-z_]{1,16}")
_SECONDS = re.compile(r"[0-9]{1,11}")  # Unix seconds; 11 digits reaches year 5138
_NAME_MAX = 256


@dataclass(frozen=True)
class SkippedItem:
    where: str  # e.g. "entry[0].changes[1].messages[3]"
    reason: str


@dataclass
class ParsedPayload:
    messages: list[InboundEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    preferences: list[PreferenceChange] = field(default_factory=list)
    template_updates: list[TemplateUpdate] = field(default_factory=list)
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
    if fields and not fields & ({"messages", PREFERENCE_FIELD} | TEMPLATE_FIELDS) and not out.skipped:
        out.ignored = True
        out.reason = "no 'messages' change (fields: " + ", ".join(sorted(fields)[:5]) + ")"
    out.messages = _order_per_user(out.messages)
    return out


def _parse_change(change: Any, where: str, out: ParsedPayload, fields: set[str]) -> None:
    if not isinstance(change, dict):
        out.skipped.append(SkippedItem(where, "change is not an object"))
        return
    field_name = change.get("field")
    name = field_name if isinstance(field_name, str) else "?"
    fields.add(name[:64])
    value = change.get("value")
    if name in TEMPLATE_FIELDS:
        try:
            out.template_updates.append(read_template_update(name, value))
        except Unreadable as exc:
            out.skipped.append(SkippedItem(where, str(exc)))
        return
    if name not in ("messages", PREFERENCE_FIELD):
        return  # other subscriptions (account alerts, ...): not for parley
    if not isinstance(value, dict):
        out.skipped.append(SkippedItem(where, "change has no value object"))
        return
    if name == PREFERENCE_FIELD:
        contacts = [c for c in _list(value.get("contacts")) if isinstance(c, dict)]
        for k, item in enumerate(_list(value.get(PREFERENCE_FIELD))):
            try:
                _preference(item, contacts, out)
            except Exception as exc:
                out.skipped.append(SkippedItem(f"{where}.{PREFERENCE_FIELD}[{k}]", _reason(exc)))
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
        except Exception as exc:  # Unreadable, or anything unforeseen: the item is reported
            out.skipped.append(SkippedItem(f"{where}.messages[{k}]", _reason(exc)))
    for k, item in enumerate(statuses):
        try:
            out.statuses.append(_status(item))
        except Exception as exc:
            out.skipped.append(SkippedItem(f"{where}.statuses[{k}]", _reason(exc)))


def _preference(item: Any, contacts: list[dict[str, Any]], out: ParsedPayload) -> None:
    if not isinstance(item, dict):
        raise Unreadable("preference is not an object")
    value = preference_value(item)
    if value is not None:  # only marketing preferences exist today; others are not parley's
        user = _user({"from": item.get("wa_id") or item.get("user_id")}, contacts)
        out.preferences.append(PreferenceChange(user, value, _timestamp(item.get("timestamp"))))


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, Unreadable) else _unexpected(exc)


def _unexpected(exc: Exception) -> str:
    return f"unreadable ({exc.__class__.__name__})"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _timestamp(value: Any) -> datetime:
    # Meta sends a string of digits; an int is tolerated. bool and float are junk.
    digits = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(digits, str) or not _SECONDS.fullmatch(digits):
        raise Unreadable("timestamp missing or not Unix seconds")
    try:
        return datetime.fromtimestamp(int(digits), UTC)
    except (OverflowError, ValueError, OSError):
        raise Unreadable("timestamp out of range") from None


def _user(item: dict[str, Any], contacts: list[dict[str, Any]]) -> UserRef:
    """The message's own ``from`` wins; the matching contact fills in the rest."""
    sender = item.get("from")
    # BSUID-only users: some payloads carry the BSUID in `from` instead of a phone.
    number, user_id = phone(sender), bsuid(sender)
    contact = None
    if number:
        contact = next((c for c in contacts if phone(c.get("wa_id")) == number), None)
    elif user_id:
        contact = next((c for c in contacts if c.get("user_id") == user_id), None)
    if contact is None and len(contacts) == 1:
        contact = contacts[0]
    name = None
    if contact is not None:
        number = number or phone(contact.get("wa_id"))
        user_id = user_id or bsuid(contact.get("user_id"))
        profile = contact.get("profile")
        if isinstance(profile, dict):
            name = clean_text(profile.get("name")) or clean_text(profile.get("username"))
    if not number and not user_id:
        raise Unreadable("no user identity (neither a BSUID nor a phone number)")
    return UserRef(user_id=user_id, phone=number, profile_name=name[:_NAME_MAX] if name else None)


def _message(item: Any, contacts: list[dict[str, Any]], phone_number_id: str) -> InboundEvent:
    """One ``messages[]`` item as the event its row of the kinds table names."""
    if not isinstance(item, dict):
        raise Unreadable("message is not an object")
    message_id = wamid(item.get("id"))
    if message_id is None:
        raise Unreadable("id (wamid) missing or invalid")
    mtype = item.get("type")
    if not isinstance(mtype, str) or not _TYPE.fullmatch(mtype):
        raise Unreadable("type missing or invalid")
    body = item.get(mtype)
    body = body if isinstance(body, dict) else {}
    inner = body.get("type") if mtype in NESTED else None
    row = lookup(mtype, inner if isinstance(inner, str) and _TYPE.fullmatch(inner) else None)
    sender = item
    if mtype == "system" and not item.get("from"):
        # System notices carry no contacts; a BSUID-only notice names the user only inside.
        sender = {**item, "from": body.get("previous_user_id") or body.get("user_id")}
    context = item.get("context")
    base: dict[str, Any] = {
        "wamid": message_id,
        "user": _user(sender, contacts),
        "phone_number_id": phone_number_id,
        "timestamp": _timestamp(item.get("timestamp")),
        "message_type": mtype,
        "context_wamid": wamid(context.get("id")) if isinstance(context, dict) else None,
        "raw": item,
    }
    content = _content(row.name, row.kind, body, item, base)  # may fill base's context_wamid
    change = content.get("identity")
    if change is not None and change.previous_user_id:
        # The notice belongs to the customer as parley knows them: by BSUID when Meta names one.
        base["user"] = UserRef(user_id=change.previous_user_id, phone=change.previous_phone)
    return InboundEvent(kind=row.kind, **base, **content)


def _content(name: str, kind: str, body: dict[str, Any], item: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The fields the kind carries beyond the envelope (text, choice, cart, answers, ...)."""
    reply = body.get(body.get("type")) if isinstance(body.get("type"), str) else None
    reply = reply if isinstance(reply, dict) else {}
    if kind == "text":
        text = clean_text(body.get("body"))
        if text is None:
            raise Unreadable("text message without text.body")
        return {"text": text}
    if name == "button":  # a template's quick-reply button
        label = clean_text(body.get("text"))
        choice_id = clean_text(body.get("payload")) or label
        if not choice_id:
            raise Unreadable("button message without payload or text")
        return {"choice_id": choice_id, "text": label}
    if kind == "choice":
        if not (choice_id := clean_text(reply.get("id"))):
            raise Unreadable(f"{name} without an id")
        return {"choice_id": choice_id, "text": clean_text(reply.get("title"))}
    if kind == "media":
        return {"text": clean_text(body.get("caption"))}
    if kind == "reaction":
        # The emoji is absent when the user removes a reaction; message_id names the
        # message of ours reacted to, which is what context_wamid means elsewhere.
        base["context_wamid"] = base["context_wamid"] or wamid(body.get("message_id"))
        return {"text": clean_text(body.get("emoji"))}
    readers = {
        "order": lambda: read_order(body),
        "flow_reply": lambda: read_flow_reply(reply),
        "call_permission": lambda: read_call_permission(reply),
        "revoke": lambda: read_revoke(body),
        "edit": lambda: read_edit(body),
        "identity": lambda: read_identity(body, item.get("from") or base["user"].key),
    }
    return readers[kind]() if kind in readers else {}


def _status(item: Any) -> StatusEvent:
    if not isinstance(item, dict):
        raise Unreadable("status is not an object")
    status_of = wamid(item.get("id"))
    if status_of is None:
        raise Unreadable("id (wamid) missing or invalid")
    status = item.get("status")
    if not isinstance(status, str) or not _STATUS.fullmatch(status):
        raise Unreadable("status missing or invalid")
    recipient = None
    for key in ("recipient_id", "recipient_user_id", "user_id"):
        value = item.get(key)
        if isinstance(value, str) and _RECIPIENT.fullmatch(value):
            recipient = phone(value) or value
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
        title = clean_text(first.get("title"))
    return StatusEvent(status_of, status, _timestamp(item.get("timestamp")), recipient, code, title)


def _order_per_user(messages: list[InboundEvent]) -> list[InboundEvent]:
    """Sort each user's messages by timestamp, leaving every user in the slots Meta used."""
    by_user: dict[str, list[InboundEvent]] = {}
    for event in messages:
        by_user.setdefault(event.user.key, []).append(event)
    queues = {key: iter(sorted(events, key=lambda e: e.timestamp)) for key, events in by_user.items()}
    return [next(queues[event.user.key]) for event in messages]
