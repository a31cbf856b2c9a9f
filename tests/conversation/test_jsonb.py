"""jsonb_safe: a payload Postgres JSONB would refuse is made storable (pure logic, no database)."""

from __future__ import annotations

from conversation.jsonb import jsonb_safe


def test_jsonb_safe_makes_any_payload_storable() -> None:
    raw = {"text\x00": ["a\x00b", float("nan"), 1.5, "\ud800"]}
    assert jsonb_safe(raw) == {"text\ufffd": ["a\ufffdb", None, 1.5, "?"]}
