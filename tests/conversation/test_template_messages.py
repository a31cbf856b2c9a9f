"""Template content: the Graph body DESIGN.md fixes, and the text a customer reads (pure)."""

from __future__ import annotations

from pathlib import Path

from conversation.template_messages import render, template_content, text_content
from templates.message_templates import load_catalogue, parse_catalogue
from worker.graph_api import build_body

ROOT = Path(__file__).resolve().parents[2]


def test_a_template_send_has_the_graph_body_of_the_contract() -> None:
    body = build_body("+1 555 000 2222", None, template_content("order_ready", "en_US", ["ORD-000002"]))
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+15550002222",
        "type": "template",
        "template": {
            "name": "order_ready",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "ORD-000002"}]}],
        },
    }
    by_bsuid = build_body(None, "US.13491208655302741918", template_content("welcome", "en", []))
    assert by_bsuid["recipient"] == "US.13491208655302741918" and "to" not in by_bsuid
    assert by_bsuid["template"] == {"name": "welcome", "language": {"code": "en"}}


def test_a_text_notification_is_a_plain_text_message() -> None:
    assert text_content("Your table is ready") == {
        "type": "text",
        "text": {"preview_url": False, "body": "Your table is ready"},
    }


def test_rendered_as_whatsapp_shows_it() -> None:
    catalogue = load_catalogue(ROOT / "templates").catalogue
    shown = render(template_content("order_ready", "en_US", ["ORD-000002"]), catalogue)
    assert shown is not None
    assert shown.header == "Your order is ready"
    assert shown.body == "Good news: your order ORD-000002 is ready. Come and pick it up whenever you like."
    assert shown.footer == "Reply STOP to stop these notices"
    assert shown.as_dict()["buttons"] == []


def test_buttons_are_shown_by_their_text() -> None:
    entry = {
        "name": "table_ready",
        "language": "en",
        "category": "UTILITY",
        "body": "Table for {{1}} is ready.",
        "examples": ["2"],
        "buttons": [
            {"type": "quick_reply", "text": "On my way"},
            {"type": "url", "text": "Menu", "url": "https://x.io"},
        ],
    }
    catalogue = parse_catalogue({"templates": [entry]}, "c").catalogue
    shown = render(template_content("table_ready", "en", ["4"]), catalogue)
    assert shown is not None and shown.body == "Table for 4 is ready." and shown.buttons == ["On my way", "Menu"]


def test_content_the_catalogue_does_not_declare_is_not_rendered() -> None:
    catalogue = load_catalogue(ROOT / "templates").catalogue
    assert render(template_content("order_ready", "es", ["x"]), catalogue) is None
    assert render(template_content("order_ready", "en_US", []), catalogue) is None
    assert render(text_content("hi"), catalogue) is None
