"""conversation.payload: real-shaped webhook bodies → events, and totality under junk."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversation.events import InboundEvent, UserRef
from conversation.payload import ParsedPayload, parse_payload

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
ALL_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.json"))
PNID = "106540352242922"
BOT_WAMID = "wamid.HBgLMTU1NTAxMjM0NTYVAgARGBI3QUQ1MkU4NTQ3RTk1RTdCQ0YA"
SHEENA = UserRef(user_id="US.13491208655302741918", phone="16505551234", profile_name="Sheena Nelson")


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def parse(name: str) -> ParsedPayload:
    return parse_payload((FIXTURES / f"{name}.json").read_bytes())


def only_message(name: str) -> InboundEvent:
    parsed = parse(name)
    assert parsed.skipped == [] and not parsed.ignored
    assert len(parsed.messages) == 1
    return parsed.messages[0]


# --- one message per type -------------------------------------------------------------


def test_text_from_a_phone_user() -> None:
    event = only_message("text_phone_user")
    assert event.kind == "text" and event.message_type == "text"
    assert event.text == "Hi, I'd like to order äöå ☕"
    assert event.user == SHEENA
    assert event.phone_number_id == PNID
    assert event.timestamp == datetime(2025, 6, 16, 16, 18, 22, tzinfo=UTC)
    assert event.wamid.startswith("wamid.")
    assert event.raw == load("text_phone_user")["entry"][0]["changes"][0]["value"]["messages"][0]


def test_username_user_without_phone_is_identified_by_bsuid() -> None:
    event = only_message("text_username_user")
    assert event.user == UserRef(user_id="US.13491208655302741918", phone=None, profile_name="Pablo M.")
    assert event.user.key == "US.13491208655302741918"


def test_bsuid_in_from_is_a_user_id_not_a_phone() -> None:
    event = only_message("text_bsuid_in_from")
    assert event.user.user_id == "US.13491208655302741918"
    assert event.user.phone is None


def test_button_reply_is_a_choice_with_context() -> None:
    event = only_message("button_reply")
    assert (event.kind, event.choice_id, event.text) == ("choice", "confirm", "Confirm")
    assert event.message_type == "interactive"
    assert event.context_wamid == BOT_WAMID


def test_list_reply_is_a_choice() -> None:
    event = only_message("list_reply")
    assert (event.kind, event.choice_id, event.text, event.context_wamid) == (
        "choice",
        "coffee",
        "Coffee",
        BOT_WAMID,
    )


def test_template_quick_reply_uses_the_payload_as_choice() -> None:
    event = only_message("template_quick_reply")
    assert (event.kind, event.message_type, event.choice_id, event.text) == (
        "choice",
        "button",
        "track_order",
        "Track my order",
    )


@pytest.mark.parametrize(
    ("name", "kind", "text"),
    [("image", "media", "my receipt"), ("location", "location", None), ("unsupported", "unsupported", None)],
)
def test_other_kinds(name: str, kind: str, text: str | None) -> None:
    event = only_message(name)
    assert (event.kind, event.text) == (kind, text)


def test_reaction_with_and_without_emoji() -> None:
    added, removed = only_message("reaction"), only_message("reaction_removed")
    assert (added.kind, added.text, added.context_wamid) == ("reaction", "\U0001f44d", BOT_WAMID)
    assert (removed.kind, removed.text, removed.context_wamid) == ("reaction", None, BOT_WAMID)


def test_a_type_parley_does_not_know_is_unknown_not_unsupported() -> None:
    data = load("text_phone_user")
    message = data["entry"][0]["changes"][0]["value"]["messages"][0]
    message["type"] = "poll_update"
    message["poll_update"] = {"vote": 1}
    [event] = parse_payload(json.dumps(data)).messages
    # Meta's own "unsupported" is a customer speaking; a type no table row names is "unknown".
    assert (event.kind, event.message_type) == ("unknown", "poll_update")


# --- statuses -------------------------------------------------------------------------


def test_statuses_sent_delivered_read_failed() -> None:
    parsed = parse("statuses")
    assert parsed.messages == [] and parsed.skipped == []
    assert [s.status for s in parsed.statuses] == ["sent", "delivered", "read", "failed"]
    sent, _, _, failed = parsed.statuses
    assert sent.recipient == "16505551234" and sent.error_code is None
    assert (failed.error_code, failed.error_title) == (131047, "Re-engagement message")
    assert failed.timestamp == datetime.fromtimestamp(1750177200, UTC)


def test_status_with_only_a_bsuid_recipient() -> None:
    data = load("statuses")
    status = data["entry"][0]["changes"][0]["value"]["statuses"][0]
    del status["recipient_id"]
    assert parse_payload(json.dumps(data)).statuses[0].recipient == "US.13491208655302741918"


# --- batches, malformed items, whole-payload ignores --------------------------------------


def test_batch_two_entries_two_changes_two_users_two_numbers() -> None:
    parsed = parse("batch")
    assert parsed.skipped == []
    # Alice's messages are put in timestamp order in her slots; Bob keeps his.
    assert [e.wamid for e in parsed.messages] == [
        "wamid.BATCH.A1",
        "wamid.BATCH.A2",
        "wamid.BATCH.B1",
        "wamid.BATCH.A3",
        "wamid.BATCH.B2",
    ]
    users = {e.wamid: e.user for e in parsed.messages}
    assert users["wamid.BATCH.A1"] == UserRef("DE.70012345678901234567", "491701234567", "Alice")
    assert users["wamid.BATCH.B1"] == users["wamid.BATCH.B2"] == UserRef("BR.99887766554433221100", None, "Bob")
    numbers = {e.wamid: e.phone_number_id for e in parsed.messages}
    assert numbers["wamid.BATCH.A1"] == PNID and numbers["wamid.BATCH.A2"] == "106540352242999"
    assert [s.wamid for s in parsed.statuses] == ["wamid.BATCH.OUT1"]


def test_malformed_items_are_skipped_and_siblings_survive() -> None:
    parsed = parse("malformed_sibling")
    assert [e.wamid for e in parsed.messages] == ["wamid.GOOD.1", "wamid.GOOD.2"]
    assert [s.wamid for s in parsed.statuses] == ["wamid.GOOD.OUT"]
    where = {item.where: item.reason for item in parsed.skipped}
    prefix = "entry[0].changes[0]"
    assert set(where) == {
        f"{prefix}.messages[1]",
        f"{prefix}.messages[2]",
        f"{prefix}.messages[3]",
        f"{prefix}.statuses[0]",
    }
    assert "id" in where[f"{prefix}.messages[1]"]
    assert "timestamp" in where[f"{prefix}.messages[2]"]


def test_message_without_any_identity_is_skipped() -> None:
    data = load("text_phone_user")
    value = data["entry"][0]["changes"][0]["value"]
    del value["messages"][0]["from"]
    value["contacts"] = []
    parsed = parse_payload(json.dumps(data))
    assert parsed.messages == []
    assert "identity" in parsed.skipped[0].reason


def test_missing_phone_number_id_skips_that_change_only() -> None:
    data = load("batch")
    del data["entry"][0]["changes"][1]["value"]["metadata"]["phone_number_id"]
    parsed = parse_payload(json.dumps(data))
    assert "wamid.BATCH.B1" not in {e.wamid for e in parsed.messages}
    assert len(parsed.messages) == 4
    assert [s.where for s in parsed.skipped] == ["entry[0].changes[1].messages[0]"]


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"\xff\xfe\x00", "[1, 2]", "null", '{"object": "page", "entry": []}', "[" * 100_000],
)
def test_whole_payload_ignored(raw: str | bytes) -> None:
    parsed = parse_payload(raw)
    assert parsed.ignored and parsed.reason
    assert parsed.messages == parsed.statuses == []


def test_only_other_fields_is_ignored() -> None:
    parsed = parse("account_update")
    assert parsed.ignored and "account_update" in parsed.reason


def test_nul_and_lone_surrogates_are_made_storable() -> None:
    data = load("text_phone_user")
    data["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "a\x00b\ud800c"
    [event] = parse_payload(json.dumps(data)).messages
    assert event.text == "ab?c"


@pytest.mark.parametrize("timestamp", [True, 1.5, "-1", "1e9", " 1750090702", "9" * 40, None, [1]])
def test_bad_timestamps_are_skipped(timestamp: object) -> None:
    data = load("text_phone_user")
    data["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = timestamp
    parsed = parse_payload(json.dumps(data))
    assert parsed.messages == [] and len(parsed.skipped) == 1


# --- properties: total on any input, siblings survive ----------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
# Keys parse_payload looks for, so generated junk reaches deep code paths.
KEYS = ["object", "entry", "changes", "field", "value", "metadata", "phone_number_id", "contacts", "wa_id"]
KEYS += ["user_id", "profile", "name", "messages", "statuses", "from", "id", "timestamp", "type", "text"]
KEYS += ["body", "interactive", "button_reply", "list_reply", "button", "payload", "context", "errors", "code"]
known_keys = st.sampled_from(KEYS)
shaped_values = st.recursive(
    json_scalars | st.sampled_from(["whatsapp_business_account", "messages", "text", "1750090702"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(known_keys, children, max_size=6),
    max_leaves=30,
)


def assert_no_surprises(parsed: ParsedPayload) -> None:
    """The catch-all in parse_payload is a safety net; junk should meet a named reason first."""
    assert not [s for s in parsed.skipped if s.reason.startswith("unreadable")]


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.one_of(json_values, shaped_values))
def test_any_json_never_raises(document: Any) -> None:
    parsed = parse_payload(json.dumps(document))
    assert isinstance(parsed, ParsedPayload)
    assert_no_surprises(parsed)
    for event in parsed.messages:
        assert event.user.key  # every event that survives has an identity


@PROPERTY
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_bytes_or_text_never_raises(raw: bytes | str) -> None:
    assert isinstance(parse_payload(raw), ParsedPayload)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``node`` (dict keys and list indexes)."""
    found = [path] if path else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found += _paths(child, (*path, key))
    return found


@PROPERTY
@given(data=st.data())
def test_mutating_one_message_never_hurts_its_siblings(data: st.DataObject) -> None:
    document = load("batch")
    targets = [(i, j, k) for i in (0, 1) for j in (0, 1) for k in range(len(_messages(document, i, j)))]
    i, j, k = data.draw(st.sampled_from(targets))
    siblings = {_messages(document, a, b)[c]["id"] for a, b, c in targets if (a, b, c) != (i, j, k)}
    mutated = copy.deepcopy(document)
    target = _messages(mutated, i, j)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(target[k])
        if not paths or data.draw(st.booleans()):
            target[k] = data.draw(json_values)  # retype the whole item
            continue
        path = data.draw(st.sampled_from(paths))
        parent = target[k]
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
    parsed = parse_payload(json.dumps(mutated))
    assert_no_surprises(parsed)
    assert siblings <= {e.wamid for e in parsed.messages}
    assert [s.wamid for s in parsed.statuses] == ["wamid.BATCH.OUT1"]
    assert len(parsed.messages) + len(parsed.skipped) == 5


def _messages(document: dict[str, Any], i: int, j: int) -> list[Any]:
    return document["entry"][i]["changes"][j]["value"].get("messages", [])


@PROPERTY
@given(name=st.sampled_from(ALL_FIXTURES), data=st.data())
def test_mutated_fixtures_never_raise(name: str, data: st.DataObject) -> None:
    document = load(name)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = _paths(document)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent: Any = document
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
    assert_no_surprises(parse_payload(json.dumps(document)))
