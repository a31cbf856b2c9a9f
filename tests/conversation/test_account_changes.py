"""Marketing preferences and template webhooks parsed from payloads in Meta's shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conversation.account_changes import TemplateUpdate
from conversation.events import UserRef
from conversation.payload import parse_payload

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def test_a_stop_and_a_resume_of_marketing_messages() -> None:
    stop = parse_payload(json.dumps(load("user_preferences_stop")))
    [change] = stop.preferences
    assert change.value == "stop" and not stop.ignored and stop.messages == []
    assert change.user == UserRef(user_id="US.13491208655302741918", phone="16505551234", profile_name="Sheena Nelson")
    assert change.timestamp == datetime.fromtimestamp(1750090800, UTC)
    [resume] = parse_payload(json.dumps(load("user_preferences_resume"))).preferences
    assert resume.value == "resume" and resume.timestamp > change.timestamp


def test_a_preference_of_another_category_is_not_parleys_and_a_bad_value_is_skipped() -> None:
    data = load("user_preferences_stop")
    item = data["entry"][0]["changes"][0]["value"]["user_preferences"][0]
    other = parse_payload(json.dumps(data).replace("marketing_messages", "offers_feedback"))
    assert other.preferences == [] and other.skipped == []
    item["value"] = "maybe"
    bad = parse_payload(json.dumps(data))
    assert bad.preferences == [] and [s.where for s in bad.skipped] == ["entry[0].changes[0].user_preferences[0]"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "template_status_paused",
            TemplateUpdate(
                "order_ready",
                "en_US",
                "594425479261596",
                status="PAUSED",
                reason="Your WhatsApp message template has been paused for 3 hours until Jun 16, 2025 at 8:00 PM UTC"
                " due to low quality.",
            ),
        ),
        ("template_status_approved", TemplateUpdate("order_ready", "en_US", "594425479261596", "APPROVED", "NONE")),
        ("template_quality_update", TemplateUpdate("order_ready", "en_US", "594425479261596", quality="YELLOW")),
        (
            "template_category_update",
            TemplateUpdate("order_reminder", "en_US", "594425479261597", category="MARKETING"),
        ),
    ],
)
def test_template_webhooks(name: str, expected: TemplateUpdate) -> None:
    parsed = parse_payload(json.dumps(load(name)))
    assert parsed.template_updates == [expected] and not parsed.ignored and parsed.skipped == []


def test_a_template_webhook_without_a_name_is_skipped_with_the_reason() -> None:
    data = load("template_status_paused")
    del data["entry"][0]["changes"][0]["value"]["message_template_name"]
    parsed = parse_payload(json.dumps(data))
    assert parsed.template_updates == []
    assert [(s.where, s.reason) for s in parsed.skipped] == [
        ("entry[0].changes[0]", "message_template_name missing or invalid")
    ]
