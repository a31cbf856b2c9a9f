"""A flow's texts in other languages: the ``translations`` block of a flow file.

The flow file holds the step graph, the option ids and the texts in the flow's own
language; ``translations`` holds, per language, only texts, addressed the way a person
reads the flow (the entry ``message``, then ``steps.<name>``), options by their id:

    translations:
      pt_BR:
        trigger_keywords: [oi, olá]
        message:
          body: "Olá, {profile_name}! Como podemos ajudar?"
          options:
            new_order: Novo pedido                 # a title alone
            coffee: {title: Café, description: "Coado na hora, 3,50"}
        steps:
          quantity: {prompt: "Quantos {product_title}?", error: "..."}

``text_slots`` lists every text a flow shows (with the WhatsApp limit it must keep);
``localize`` builds the flow as a customer of that language sees it: same ids, same graph.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from templates import schema
from templates.languages import LanguageError, canonical
from templates.schema import TemplateDef

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptionTexts(_Strict):
    title: str
    description: str | None = None


class MessageTexts(_Strict):
    header: str | None = None
    body: str | None = None
    footer: str | None = None
    button: str | None = None  # a list's button
    sections: list[str] | None = None  # section titles, in the flow's order
    options: dict[str, str | OptionTexts] | None = None  # option id → title, or title and description


class StepTexts(_Strict):
    prompt: str | None = None
    error: str | None = None
    message: MessageTexts | None = None


class FlowTranslation(_Strict):
    trigger_keywords: list[str] = Field(default_factory=list)
    message: MessageTexts | None = None
    steps: dict[str, StepTexts] = Field(default_factory=dict)

    def texts(self) -> dict[str, str]:
        """Every text given, by address (``message.body``, ``steps.quantity.prompt``)."""
        out: dict[str, str] = {}
        if self.message is not None:
            out |= _message_texts(self.message, "message")
        for name, step in self.steps.items():
            prefix = f"steps.{name}"
            for field in ("prompt", "error"):
                if getattr(step, field) is not None:
                    out[f"{prefix}.{field}"] = getattr(step, field)
            if step.message is not None:
                out |= _message_texts(step.message, f"{prefix}.message")
        return out


def _message_texts(message: MessageTexts, prefix: str) -> dict[str, str]:
    out = {f"{prefix}.{f}": getattr(message, f) for f in ("header", "body", "footer", "button")}
    out = {k: v for k, v in out.items() if v is not None}
    for i, title in enumerate(message.sections or []):
        out[f"{prefix}.sections[{i}]"] = title
    for option_id, given in (message.options or {}).items():
        texts = OptionTexts(title=given) if isinstance(given, str) else given
        out[f"{prefix}.options.{option_id}.title"] = texts.title
        if texts.description is not None:
            out[f"{prefix}.options.{option_id}.description"] = texts.description
    return out


@dataclass(frozen=True)
class TextSlot:
    """One text a flow shows: where it is, what it says, the WhatsApp limit it must keep."""

    address: str
    text: str
    limit: int
    label: str  # what Meta calls it, for error messages


@dataclass
class _Place:
    slot: TextSlot
    container: dict[str, Any]
    key: str


def _message_places(message: dict[str, Any], prefix: str) -> Iterator[_Place]:
    """Every text of a dumped message (entry or step), with where it sits in the dump."""
    interactive = message.get("type") != "text"
    body_limit = schema.MAX_INTERACTIVE_BODY if interactive else schema.MAX_TEXT_BODY
    body_label = "an interactive message body" if interactive else "a text message"
    parts = (
        ("header", schema.MAX_HEADER, "a header"),
        ("body", body_limit, body_label),
        ("footer", schema.MAX_FOOTER, "a footer"),
    )
    for part, limit, label in parts:
        if isinstance(message.get(part), dict):
            node = message[part]
            yield _Place(TextSlot(f"{prefix}.{part}", node["text"], limit, label), node, "text")
    action = message.get("action") or {}
    if "button" in action:
        slot = TextSlot(f"{prefix}.button", action["button"], schema.MAX_LIST_BUTTON, "a list's button text")
        yield _Place(slot, action, "button")
    for button in action.get("buttons", []):
        reply = button["reply"]
        address = f"{prefix}.options.{reply['id']}.title"
        yield _Place(TextSlot(address, reply["title"], schema.MAX_BUTTON_TITLE, "a reply button title"), reply, "title")
    for i, section in enumerate(action.get("sections", [])):
        slot = TextSlot(f"{prefix}.sections[{i}]", section["title"], schema.MAX_SECTION_TITLE, "a list section title")
        yield _Place(slot, section, "title")
        for row in section["rows"]:
            at = f"{prefix}.options.{row['id']}"
            yield _Place(TextSlot(f"{at}.title", row["title"], schema.MAX_ROW_TITLE, "a list row title"), row, "title")
            if "description" in row:
                slot = TextSlot(
                    f"{at}.description", row["description"], schema.MAX_ROW_DESCRIPTION, "a row description"
                )
                yield _Place(slot, row, "description")


def _places(dumped: dict[str, Any]) -> Iterator[_Place]:
    menu = dumped["menu_structure"]
    # A shallow copy shares the parts (header, action) with the dump, so localize edits the dump.
    yield from _message_places({k: v for k, v in menu.items() if k != "steps"}, "message")
    for name, step in menu["steps"].items():
        for field in ("prompt", "error"):
            if step.get(field) is not None:
                slot = TextSlot(f"steps.{name}.{field}", step[field], schema.MAX_TEXT_BODY, "a text message")
                yield _Place(slot, step, field)
        if step.get("message") is not None:
            yield from _message_places(step["message"], f"steps.{name}.message")


def _dump(template: TemplateDef) -> dict[str, Any]:
    return template.model_dump(exclude_none=True)


def text_slots(template: TemplateDef) -> dict[str, TextSlot]:
    """Every text ``template`` shows, by address, in the flow's own language."""
    return {p.slot.address: p.slot for p in _places(_dump(template))}


def localize(template: TemplateDef, translation: FlowTranslation, language: str | None = None) -> TemplateDef:
    """``template`` as a customer of the translation's language sees it.

    The ids, the graph and every field that is not a text stay as they are; the keywords are
    the translation's; the result is in ``language`` and carries no translations of its own.
    Raises pydantic's ValidationError when a translated text breaks a WhatsApp limit, so run
    ``translation_checks`` first for readable errors.
    """
    given = translation.texts()
    dumped = _dump(template)
    for place in _places(dumped):
        if place.slot.address in given:
            place.container[place.key] = given[place.slot.address]
    dumped["trigger_keywords"] = list(translation.trigger_keywords)
    dumped.pop("translations", None)
    if language is not None:
        dumped["language"] = language
    return TemplateDef.model_validate(dumped)


def by_language(template: TemplateDef) -> dict[str | None, TemplateDef]:
    """The flow in each of its languages: its own (key ``template.language``, None when it
    is the deployment's default) and each translation's, by canonical language.

    The loader refuses a broken translation; one that is stored broken anyway (edited by
    hand) is left out here and the flow's own language serves those customers.
    """
    own = template.language
    try:
        own = canonical(own) if own else None
    except LanguageError:
        own = None
    out: dict[str | None, TemplateDef] = {own: template}
    for written, block in (template.translations or {}).items():
        try:
            language = canonical(str(written))
            out[language] = localize(template, FlowTranslation.model_validate(block or {}), language)
        except (LanguageError, ValidationError) as exc:
            log.error("translation %s of %s is invalid and is ignored: %s", written, template.template_name, exc)
    return out
