"""A flow naming a message template (a reminder, a reply once the window has closed).

The flow gives the template's name, language and parameter values; the values are flow
texts, so their ``{placeholders}`` are filled from the conversation's context at send
time and checked by the flow linter like any other text. What is checked here is the
other side: that the catalogue declares the template in that language and that the
number of values is the template's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from templates.lint import LintError
from templates.message_templates import CATALOGUE_FILE, Catalogue
from templates.schema import TemplateDef
from templates.template_call import TemplateUse

__all__ = ["FlowTemplateUse", "TemplateUse", "flow_template_uses", "lint_template_uses"]


@dataclass(frozen=True)
class FlowTemplateUse:
    """Where a flow names a template: the flow's file and name, the step (None: the flow
    itself) and the dotted field, e.g. ``reminder.template``."""

    file: str
    flow: str
    step: str | None
    field: str
    use: TemplateUse


def flow_template_uses(file: str, template: TemplateDef) -> list[FlowTemplateUse]:
    """Every message template ``template`` names: its steps' reminder templates."""
    return [
        FlowTemplateUse(file, template.template_name, name, "reminder_template", step.reminder_template)
        for name, step in template.steps.items()
        if step.reminder_template is not None
    ]


def lint_template_uses(uses: Iterable[FlowTemplateUse], catalogue: Catalogue) -> list[LintError]:
    """One error per use of a template the catalogue does not declare as used."""
    errors = []
    for where in uses:
        use = where.use

        def error(message: str, where: FlowTemplateUse = where) -> None:
            errors.append(LintError(where.file, where.flow, where.step, where.field, f"{where.field}: {message}"))

        template = catalogue.get(use.name, use.language)
        if use.name not in catalogue.names():
            error(f"no message template named {use.name!r} in {CATALOGUE_FILE}")
        elif template is None:
            offered = ", ".join(catalogue.languages(use.name))
            error(f"message template {use.name} is not declared in {use.language!r} (only: {offered})")
        elif len(use.parameters) != template.parameter_count:
            error(
                f"message template {use.name} takes {template.parameter_count} parameter(s), got {len(use.parameters)}"
            )
    return sorted(set(errors), key=LintError.sort_key)
