"""The engine's values (``conversation/state.py``): outcomes, end reasons, the template set."""

from __future__ import annotations

import json
from typing import Any

from conversation.state import CANCEL_ID, RESTART_ID, RETRY_ID, Ended, EndReason, Outcome, TemplateSet
from templates.schema import RESERVED_PREFIX, TemplateDef


def flow(name: str, keywords: list[str], **extra: Any) -> TemplateDef:
    return TemplateDef.model_validate(
        {
            "template_name": name,
            "template_type": "text",
            "trigger_keywords": keywords,
            "menu_structure": {
                "type": "text",
                "body": {"text": "Hello"},
                "steps": {"initial": {"next_step": "initial"}},
            },
            **extra,
        }
    )


def test_outcomes_are_the_strings_stored_on_inbound_rows_and_counted_by_metrics():
    assert [o.value for o in Outcome] == [
        "started",
        "advanced",
        "invalid",
        "stale",
        "completed",
        "cancelled",
        "restarted",
        "switched",
        "action_failed",
        "fallback",
        "ignored",
        "reaction",
        "way_out",
        "recorded",
        "unknown_kind",
        "order_received",
        "submitted",
        "handed_off",
        "waiting",
        "opted_out",
        "opted_in",
    ]


def test_end_reasons_are_the_event_names_in_the_order_of_the_stats_columns():
    assert [r.value for r in EndReason] == [
        "completed",
        "cancelled",
        "expired",
        "switched",
        "restarted",
        "template_gone",
        "handed_off",
    ]


def test_outcomes_and_end_reasons_read_as_their_plain_strings():
    # What the database, the JSON logs and the metric labels get must not change with the type.
    assert str(Outcome.WAY_OUT) == "way_out" and f"{EndReason.TEMPLATE_GONE}" == "template_gone"
    assert json.dumps({EndReason.EXPIRED: Outcome.STALE}) == '{"expired": "stale"}'
    assert Ended("shop", "qty", EndReason.CANCELLED) == Ended("shop", "qty", "cancelled")  # type: ignore[arg-type]


def test_way_out_ids_carry_the_prefix_flows_may_not_use():
    assert all(i.startswith(RESERVED_PREFIX) for i in (RETRY_ID, RESTART_ID, CANCEL_ID))
    assert len({RETRY_ID, RESTART_ID, CANCEL_ID}) == 3


def test_template_set_resolves_the_flow_alias_and_hides_inactive_templates():
    templates = TemplateSet({"shop": flow("shop", ["order"]), "old": flow("old", ["legacy"], is_active=False)})
    assert templates.get("shop") is templates.templates["shop"]
    assert templates.get("shop_flow") is templates.templates["shop"]
    assert templates.get("old") is None and templates.get("missing") is None


def test_template_set_indexes_the_keywords_of_active_templates_only():
    templates = TemplateSet({"shop": flow("shop", ["order"]), "old": flow("old", ["legacy"], is_active=False)})
    assert templates.keywords.exact("Order") == "shop"
    assert templates.keywords.search("I want to order tea") == "shop"
    assert templates.keywords.exact("legacy") is None
