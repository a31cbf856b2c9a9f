"""Template messages in the sandbox Graph API: their shape, Meta's refusal of a template
the business does not have, and what the customer reads (``sandbox.py`` asks).

The catalogue (``templates/message_templates.yaml``) stands in for the templates Meta
approved: a name, language or parameter count it does not declare is refused with the
code Meta uses (132001, 132000), so a send the sandbox accepts is one Meta would.
"""

from __future__ import annotations

from typing import Any

from conversation.template_messages import render
from templates.message_templates import Catalogue

NAME_MAX, LANGUAGE_MAX, PARAMETER_MAX, PARAMETERS_MAX = 512, 15, 1024, 100
COMPONENTS = ("header", "body", "button")


def _blank(value: Any, limit: int) -> bool:
    return not isinstance(value, str) or not value.strip() or len(value) > limit


def shape_problem(template: Any) -> str | None:
    """What is wrong with a send's ``template`` object as Graph reads it; None: nothing."""
    if not isinstance(template, dict):
        return "template is required and must be an object"
    if _blank(template.get("name"), NAME_MAX):
        return f"template.name is required: a non-empty string of at most {NAME_MAX} characters"
    language = template.get("language")
    if not isinstance(language, dict) or _blank(language.get("code"), LANGUAGE_MAX):
        return "template.language.code is required, e.g. en_US"
    components = template.get("components") or []
    if not isinstance(components, list):
        return "template.components must be a list"
    for i, component in enumerate(components):
        where = f"template.components[{i}]"
        if not isinstance(component, dict) or component.get("type") not in COMPONENTS:
            return f"{where}.type must be 'header', 'body' or 'button'"
        parameters = component.get("parameters")
        if not isinstance(parameters, list) or not 1 <= len(parameters) <= PARAMETERS_MAX:
            return f"{where}.parameters must be a list of 1 to {PARAMETERS_MAX} items"
        for j, parameter in enumerate(parameters):
            if not isinstance(parameter, dict):
                return f"{where}.parameters[{j}] must be an object"
            if parameter.get("type") == "text" and _blank(parameter.get("text"), PARAMETER_MAX):
                return f"{where}.parameters[{j}].text is required: at most {PARAMETER_MAX} characters"
    return None


def refusal(body: dict[str, Any], catalogue: Catalogue) -> tuple[int, int, str, str] | None:
    """(HTTP status, code, message, details) Meta would answer a well-shaped template send
    with, when the business has no such template; None when the catalogue declares it so."""
    template = body["template"]
    name, language = template["name"], template["language"]["code"]
    if catalogue.get(name, language) is None:
        return 404, 132001, "Template name does not exist in the translation", f"{name} ({language})"
    if render(body, catalogue) is None:
        message = "Number of parameters does not match the expected number of params"
        return 400, 132000, message, message
    return None


def summary(body: dict[str, Any], catalogue: Catalogue) -> tuple[str, list[str]]:
    """The text a customer reads (header, body, footer, in WhatsApp's bold and italics) and the buttons."""
    shown = render(body, catalogue)
    if shown is None:
        return f"[template {body.get('template', {}).get('name')}]", []
    parts = [f"*{shown.header}*" if shown.header else "", shown.body, f"_{shown.footer}_" if shown.footer else ""]
    return "\n".join(p for p in parts if p) + f"\n(template {shown.name}, {shown.language})", shown.buttons
