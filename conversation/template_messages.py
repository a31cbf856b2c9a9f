"""Message templates as outbox content, and back as the text a customer reads.

The content is the WhatsApp message object the sender puts in its Graph body
(``worker/graph_api.py`` adds ``messaging_product`` and the recipient)::

    {"type": "template", "template": {"name": N, "language": {"code": L},
     "components": [{"type": "body", "parameters": [{"type": "text", "text": V}, ...]}]}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from templates.message_templates import Catalogue


def template_content(name: str, language: str, values: Sequence[str]) -> dict[str, Any]:
    """The outbox content of a template send; a template without parameters has no components."""
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if values:
        template["components"] = [{"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}]
    return {"type": "template", "template": template}


def text_content(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"preview_url": False, "body": body}}


@dataclass(frozen=True)
class RenderedTemplate:
    """A template message as WhatsApp shows it: header, body, footer, then its buttons."""

    name: str
    language: str
    body: str
    header: str | None = None
    footer: str | None = None
    buttons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language,
            "header": self.header,
            "body": self.body,
            "footer": self.footer,
            "buttons": list(self.buttons),
        }


def body_values(content: Mapping[str, Any]) -> list[str]:
    """The body parameter values of template content, in order."""
    template = content.get("template") or {}
    for component in template.get("components") or []:
        if component.get("type") == "body":
            return [str(p.get("text", "")) for p in component.get("parameters") or []]
    return []


def render(content: Mapping[str, Any], catalogue: Catalogue) -> RenderedTemplate | None:
    """What the customer reads for template ``content``; None when it is no template the
    catalogue declares (with these values)."""
    if content.get("type") != "template":
        return None
    template = content.get("template") or {}
    name, language = template.get("name"), (template.get("language") or {}).get("code")
    values = body_values(content)
    declared = catalogue.get(name, language) if isinstance(name, str) and isinstance(language, str) else None
    if declared is None or len(values) != declared.parameter_count:
        return None
    return RenderedTemplate(
        name=declared.name,
        language=declared.language,
        body=declared.fill(values),
        header=declared.header,
        footer=declared.footer,
        buttons=[button.text for button in declared.buttons],
    )


def with_rendered(messages: list[dict[str, Any]], catalogue: Catalogue) -> list[dict[str, Any]]:
    """Replies as ``conversation.history`` reads them, each template one given ``rendered``
    (its ``as_dict``; None when the catalogue does not declare it so)."""
    for message in messages:
        content = message.get("content") or {}
        if content.get("type") == "template":
            shown = render(content, catalogue)
            message["rendered"] = shown.as_dict() if shown is not None else None
    return messages
