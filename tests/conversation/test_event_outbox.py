"""The events' outbox rules that need no receiver: signature, backoff, kinds."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime

import pytest

from conversation import event_outbox

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    body = b'{"id":"1","type":"flow.completed"}'
    expected = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert event_outbox.sign("k", body) == expected
    assert event_outbox.signature_matches("k", body, expected)
    assert not event_outbox.signature_matches("k", body + b" ", expected)
    assert not event_outbox.signature_matches("other", body, expected)
    assert not event_outbox.signature_matches("k", body, None)


def test_backoff_doubles_from_five_seconds_up_to_an_hour() -> None:
    waits = [event_outbox.backoff(n).total_seconds() for n in range(1, 12)]
    assert waits[:5] == [5, 10, 20, 40, 80]
    assert waits[-1] == 3600 and max(waits) == 3600


def test_only_known_kinds_are_recorded() -> None:
    with pytest.raises(ValueError):
        event_outbox.record(None, "order.shipped", {}, T0)  # type: ignore[arg-type]


def test_event_data_of_a_completed_flow_and_a_failed_message() -> None:
    sid = uuid.UUID(int=7)
    assert event_outbox.flow_completed("support", "155", sid, {"email": "a@b.example"}) == {
        "user": "155",
        "template": "support",
        "submission_id": str(sid),
        "answers": {"email": "a@b.example"},
    }
    assert event_outbox.message_failed("155", 12, 131047, "Re-engagement message") == {
        "user": "155",
        "message_id": 12,
        "code": 131047,
        "error": "Re-engagement message",
    }
