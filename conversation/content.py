"""WhatsApp message content: flow messages rendered with their placeholders, kept in limits.

What the step engine sends is built here, and so is what ``get_current_menu`` shows; both
go out through the outbox as the ``type``/``text``/``interactive`` part of a Cloud API send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conversation.state import CANCEL_ID, RESTART_ID, RETRY_ID, Conversation, TemplateSet, Texts
from templates.placeholders import render
from templates.schema import (
    INITIAL,
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


def text_message(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body[:MAX_TEXT_BODY], "preview_url": False}}


def _render_tree(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        return render(node, values)
    if isinstance(node, dict):
        return {k: (v if k in {"id", "type"} else _render_tree(v, values)) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_tree(v, values) for v in node]
    return node


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clamp(message: dict[str, Any]) -> dict[str, Any]:
    """Keep rendered fields within Meta's limits: a long placeholder value (a customer's
    name in a button title) must shorten the text, not get the whole message refused."""
    for part, limit in (("header", MAX_HEADER), ("footer", MAX_FOOTER), ("body", MAX_INTERACTIVE_BODY)):
        if isinstance(message.get(part), dict) and isinstance(message[part].get("text"), str):
            message[part]["text"] = _clip(message[part]["text"], limit)
    action = message.get("action") or {}
    for button in action.get("buttons", []):
        button["reply"]["title"] = _clip(button["reply"]["title"], MAX_BUTTON_TITLE)
    if isinstance(action.get("button"), str):
        action["button"] = _clip(action["button"], MAX_LIST_BUTTON)
    for section in action.get("sections", []):
        section["title"] = _clip(section["title"], MAX_SECTION_TITLE)
        for row in section["rows"]:
            row["title"] = _clip(row["title"], MAX_ROW_TITLE)
            if isinstance(row.get("description"), str):
                row["description"] = _clip(row["description"], MAX_ROW_DESCRIPTION)
    return message


def interactive(message: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A flow message (button/list/text shape) as WhatsApp content, placeholders filled."""
    filled = _render_tree(message, values)
    if filled["type"] == "text":
        return text_message(filled["body"]["text"])
    return {"type": "interactive", "interactive": _clamp(filled)}


def step_messages(template: TemplateDef, name: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a customer sees on entering step ``name``, as WhatsApp content."""
    step = template.steps[name]
    if name == INITIAL and step.prompt is None and step.message is None:
        return [interactive(template.entry_message(), values)]
    out = [text_message(render(step.prompt, values))] if step.prompt else []
    if step.message is not None:
        out.append(interactive(step.message.model_dump(exclude_none=True), values))
    return out


def way_out_message(texts: Texts) -> dict[str, Any]:
    """The menu offered after too many invalid answers: retry, restart or cancel."""
    buttons = [(RETRY_ID, texts.retry_title), (RESTART_ID, texts.restart_title), (CANCEL_ID, texts.cancel_title)]
    return {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": texts.way_out},
            "action": {"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in buttons]},
        },
    }


def current_menu(templates: TemplateSet, conv: Conversation, profile_name: str | None = None) -> list[dict]:
    """What the customer was last asked, as WhatsApp content (for ``get_current_menu``)."""
    template = templates.get(conv.template, conv.language)
    if template is None or conv.step not in template.steps:
        return []
    return step_messages(template, conv.step, {"profile_name": profile_name or "there", **conv.context})
