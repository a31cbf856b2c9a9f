"""WhatsApp content (``conversation/content.py``): placeholders filled, Meta's limits kept.

Pure functions over small inline flows; what the engine does with them is test_engine.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conversation.content import current_menu, interactive, step_messages, text_message, way_out_message
from conversation.state import CANCEL_ID, RESTART_ID, RETRY_ID, Conversation, TemplateSet, Texts
from templates.schema import (
    MAX_BUTTON_TITLE,
    MAX_FOOTER,
    MAX_HEADER,
    MAX_INTERACTIVE_BODY,
    MAX_LIST_BUTTON,
    MAX_ROW_DESCRIPTION,
    MAX_ROW_TITLE,
    MAX_SECTION_TITLE,
    MAX_TEXT_BODY,
    TemplateDef,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def button(i: str, title: str) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": i, "title": title}}


ORDER = TemplateDef.model_validate(
    {
        "template_name": "order",
        "template_type": "button",
        "trigger_keywords": ["order"],
        "menu_structure": {
            "type": "button",
            "body": {"text": "Hello {profile_name}!"},
            "action": {"buttons": [button("tea", "Tea"), button("cake", "Cake")]},
            "steps": {
                "initial": {"context_key": "product", "next_step": "qty"},
                "qty": {"prompt": "How many {product_title}?", "validation": "number", "next_step": "confirm"},
                "confirm": {
                    "prompt": "Nearly done, {profile_name}.",
                    "message": {
                        "type": "button",
                        "body": {"text": "{qty} x {product_title}?"},
                        "action": {"buttons": [button("yes", "Yes {profile_name}"), button("no", "No")]},
                    },
                    "next_steps": {"yes": "done", "no": "initial"},
                },
                "done": {"prompt": "Thanks!", "end_conversation": True},
            },
        },
    }
)


def test_text_message_is_plain_text_without_preview_cut_to_the_text_limit():
    assert text_message("hi") == {"type": "text", "text": {"body": "hi", "preview_url": False}}
    assert len(text_message("x" * (MAX_TEXT_BODY + 10))["text"]["body"]) == MAX_TEXT_BODY


def test_interactive_fills_placeholders_in_texts_but_never_in_ids_or_types():
    message = {
        "type": "button",
        "body": {"text": "Hi {name}"},
        "action": {"buttons": [button("{name}", "For {name}")]},
    }
    out = interactive(message, {"name": "Ann"})
    assert out["type"] == "interactive"
    assert out["interactive"]["body"]["text"] == "Hi Ann"
    assert out["interactive"]["action"]["buttons"][0]["reply"] == {"id": "{name}", "title": "For Ann"}


def test_a_text_shaped_flow_message_goes_out_as_a_text_message():
    assert interactive({"type": "text", "body": {"text": "Hi {name}"}}, {"name": "Ann"}) == text_message("Hi Ann")


def test_every_rendered_field_is_clipped_to_its_limit_with_an_ellipsis():
    long = "{v}"
    message = {
        "type": "list",
        "header": {"type": "text", "text": long},
        "body": {"text": long},
        "footer": {"text": long},
        "action": {
            "button": long,
            "sections": [{"title": long, "rows": [{"id": "r1", "title": long, "description": long}]}],
        },
    }
    out = interactive(message, {"v": "y" * 2000})["interactive"]
    action = out["action"]
    section = action["sections"][0]
    row = section["rows"][0]
    fields = [
        (out["header"]["text"], MAX_HEADER),
        (out["body"]["text"], MAX_INTERACTIVE_BODY),
        (out["footer"]["text"], MAX_FOOTER),
        (action["button"], MAX_LIST_BUTTON),
        (section["title"], MAX_SECTION_TITLE),
        (row["title"], MAX_ROW_TITLE),
        (row["description"], MAX_ROW_DESCRIPTION),
    ]
    for text, limit in fields:
        assert len(text) == limit and text.endswith("…")
    assert row["id"] == "r1"


def test_a_long_value_in_a_button_title_is_clipped_and_short_ones_are_left_alone():
    out = interactive(ORDER.steps["confirm"].message.model_dump(exclude_none=True), {"profile_name": "B" * 40})
    yes, no = (b["reply"]["title"] for b in out["interactive"]["action"]["buttons"])
    assert len(yes) == MAX_BUTTON_TITLE and yes.startswith("Yes BBB") and yes.endswith("…")
    assert no == "No"


def test_step_messages_initial_without_its_own_text_is_the_entry_message():
    assert step_messages(ORDER, "initial", {"profile_name": "Ann"}) == [
        interactive(ORDER.entry_message(), {"profile_name": "Ann"})
    ]


def test_step_messages_send_the_prompt_then_the_message():
    values = {"profile_name": "Ann", "qty": 2, "product_title": "Tea"}
    prompt, menu = step_messages(ORDER, "confirm", values)
    assert prompt == text_message("Nearly done, Ann.")
    assert menu["interactive"]["body"]["text"] == "2 x Tea?"
    assert step_messages(ORDER, "qty", values) == [text_message("How many Tea?")]


def test_way_out_message_offers_retry_restart_and_cancel_in_the_configured_words():
    texts = Texts(way_out="Stuck?", retry_title="Again", restart_title="From the top", cancel_title="Stop")
    out = way_out_message(texts)["interactive"]
    assert out["body"]["text"] == "Stuck?"
    replies = [(b["reply"]["id"], b["reply"]["title"]) for b in out["action"]["buttons"]]
    assert replies == [(RETRY_ID, "Again"), (RESTART_ID, "From the top"), (CANCEL_ID, "Stop")]


def test_current_menu_is_what_the_customer_was_last_asked():
    templates = TemplateSet({"order": ORDER})
    conv = Conversation("order", "qty", {"product_title": "Cake"}, NOW + timedelta(hours=1), NOW)
    assert current_menu(templates, conv, "Ann") == [text_message("How many Cake?")]
    assert current_menu(templates, Conversation("order", "initial", {}, NOW, NOW))[0]["interactive"]["body"] == {
        "text": "Hello there!"
    }


def test_current_menu_is_empty_when_the_template_or_step_is_gone():
    templates = TemplateSet({"order": ORDER})
    assert current_menu(templates, Conversation("gone", "initial", {}, NOW, NOW)) == []
    assert current_menu(templates, Conversation("order", "removed_step", {}, NOW, NOW)) == []
