"""Message templates: the Meta-approved texts parley may send when the 24-hour window is closed.

``message_templates.yaml`` declares them (name, language, category, body with ``{{1}}``
parameters, optional header, footer and buttons), as approved in WhatsApp Manager. This
module is their schema, loader and linter: every rule Meta applies when it reviews a
template is checked here, so a catalogue that Meta would not have approved never loads,
and a send whose parameters Meta would refuse is refused before it is queued.

Only positional body parameters are supported (``{{1}}``, ``{{2}}``...); a send gives
their values in order. Header, footer and buttons are fixed text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from templates.languages import fallbacks
from templates.lint import LintError

CATALOGUE_FILE = "message_templates.yaml"

# Meta's limits for a template's components and for the values of its parameters.
MAX_NAME = 512
MAX_HEADER = 60
MAX_BODY = 1024
MAX_FOOTER = 60
MAX_BUTTONS = 10
MAX_BUTTON_TEXT = 25
MAX_URL_BUTTONS = 2
MAX_PHONE_BUTTONS = 1
MAX_URL = 2000
MAX_PHONE = 20
# A parameter value may hold no newline or tab and no run of more than 4 spaces.
_BAD_VALUE = re.compile(r"[\n\t]| {5,}")

# The language codes Meta accepts for a template (its "Supported Languages" list).
# fmt: off
LANGUAGES = frozenset({
    "af", "sq", "ar", "ar_EG", "ar_AE", "ar_LB", "ar_MA", "ar_QA", "az", "be_BY", "bn", "bn_IN", "bg", "ca",
    "zh_CN", "zh_HK", "zh_TW", "hr", "cs", "da", "prs_AF", "nl", "nl_BE", "en", "en_GB", "en_US", "en_AE",
    "en_AU", "en_CA", "en_GH", "en_IE", "en_IN", "en_JM", "en_MY", "en_NZ", "en_QA", "en_SG", "en_UG", "en_ZA",
    "et", "fil", "fi", "fr", "fr_BE", "fr_CA", "fr_CH", "fr_CI", "fr_MA", "ka", "de", "de_AT", "de_CH", "el",
    "gu", "ha", "he", "hi", "hu", "id", "ga", "it", "ja", "kn", "kk", "rw_RW", "ko", "ky_KG", "lo", "lv", "lt",
    "mk", "ms", "ml", "mr", "nb", "ps_AF", "fa", "pl", "pt_BR", "pt_PT", "pa", "ro", "ru", "sr", "si_LK", "sk",
    "sl", "es", "es_AR", "es_CL", "es_CO", "es_CR", "es_DO", "es_EC", "es_HN", "es_MX", "es_PA", "es_PE", "es_ES",
    "es_UY", "sw", "sv", "ta", "te", "th", "tr", "uk", "ur", "uz", "vi", "zu",
})
# fmt: on

_PARAM = re.compile(r"\{\{(.*?)\}\}")
_POSITIONAL = re.compile(r"^[1-9][0-9]*$")


def parameters_in(text: str) -> list[int]:
    """The ``{{n}}`` numbers in ``text``, in order; ValueError for any other ``{{...}}``."""
    numbers = []
    for match in _PARAM.finditer(text):
        inner = match.group(1)
        if not _POSITIONAL.match(inner):
            raise ValueError(f"parameter {{{{{inner}}}}} is not positional: write {{{{1}}}}, {{{{2}}}}, ...")
        numbers.append(int(inner))
    return numbers


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _text(max_len: int) -> Any:
    return Annotated[str, StringConstraints(min_length=1, max_length=max_len)]


class QuickReplyButton(Strict):
    type: Literal["quick_reply"]
    text: _text(MAX_BUTTON_TEXT)  # type: ignore[valid-type]


class UrlButton(Strict):
    type: Literal["url"]
    text: _text(MAX_BUTTON_TEXT)  # type: ignore[valid-type]
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=MAX_URL)]


class PhoneButton(Strict):
    type: Literal["phone_number"]
    text: _text(MAX_BUTTON_TEXT)  # type: ignore[valid-type]
    phone_number: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ]+$", max_length=MAX_PHONE)]


TemplateButton = Annotated[QuickReplyButton | UrlButton | PhoneButton, Field(discriminator="type")]


class MessageTemplate(Strict):
    """One approved template in one language, as declared in the catalogue."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$", min_length=1, max_length=MAX_NAME)]
    language: str
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
    header: _text(MAX_HEADER) | None = None  # type: ignore[valid-type]
    body: _text(MAX_BODY)  # type: ignore[valid-type]
    footer: _text(MAX_FOOTER) | None = None  # type: ignore[valid-type]
    buttons: Annotated[list[TemplateButton], Field(max_length=MAX_BUTTONS)] = Field(default_factory=list)
    # Meta reviews a template with parameters only with a sample value for each.
    examples: list[str] = Field(default_factory=list)
    description: str | None = None

    @model_validator(mode="after")
    def _meta_rules(self) -> MessageTemplate:
        if self.language not in LANGUAGES:
            raise ValueError(f"language {self.language!r} is not a language code Meta accepts (e.g. en_US, pt_BR)")
        for part, text in (("header", self.header), ("footer", self.footer)):
            if text is not None and parameters_in(text):
                raise ValueError(f"{part} takes no parameters here: only the body's {{{{n}}}} are filled in")
        numbers = parameters_in(self.body)
        if sorted(set(numbers)) != list(range(1, len(set(numbers)) + 1)):
            raise ValueError(f"body parameters must be numbered {{{{1}}}} to {{{{n}}}} without gaps, got {numbers}")
        stripped = self.body.strip()
        if numbers and (stripped.startswith("{{") or stripped.endswith("}}")):
            raise ValueError("body must not start or end with a parameter (Meta rejects it)")
        if re.search(r"\}\}\s*\{\{", self.body):
            raise ValueError("body must not hold two parameters side by side (Meta rejects it)")
        if len(self.examples) != len(set(numbers)):
            raise ValueError(
                f"examples: give one sample value per parameter ({len(set(numbers))}), got {len(self.examples)}"
            )
        kinds = [button.type for button in self.buttons]
        if kinds.count("url") > MAX_URL_BUTTONS:
            raise ValueError(f"buttons: at most {MAX_URL_BUTTONS} url buttons")
        if kinds.count("phone_number") > MAX_PHONE_BUTTONS:
            raise ValueError(f"buttons: at most {MAX_PHONE_BUTTONS} phone_number button")
        return self

    @property
    def parameter_count(self) -> int:
        return len(set(parameters_in(self.body)))

    def fill(self, values: Sequence[str]) -> str:
        """The body as the customer reads it, ``{{n}}`` replaced by ``values[n - 1]``."""
        return _PARAM.sub(lambda m: values[int(m.group(1)) - 1], self.body)


@dataclass(frozen=True)
class CallProblem:
    """Why a send of a template would be refused; ``field`` is the request's field."""

    field: str
    message: str


@dataclass(frozen=True)
class Catalogue:
    templates: dict[tuple[str, str], MessageTemplate] = field(default_factory=dict)

    def get(self, name: str, language: str) -> MessageTemplate | None:
        return self.templates.get((name, language))

    def languages(self, name: str) -> list[str]:
        return sorted(language for n, language in self.templates if n == name)

    def names(self) -> set[str]:
        return {name for name, _ in self.templates}

    def language_for(self, name: str, spoken: str | None, named: str) -> str:
        """The language to send template ``name`` in to a customer who speaks ``spoken``.

        A flow or a notice names a template once, in ``named``; Meta approves one template
        per name and language, so a Portuguese customer (``pt_BR``, or plain ``pt``) gets the
        ``pt_BR`` template of that name when it is declared, and ``named`` otherwise."""
        if not spoken:
            return named
        declared = self.languages(name)
        for code in fallbacks(spoken):
            if code in (named, named.split("_", 1)[0]):
                return named
            if code in declared:
                return code
            same_base = [d for d in declared if d.split("_", 1)[0] == code]
            if same_base:
                return same_base[0]
        return named

    def check_call(self, name: Any, language: Any, values: Any) -> list[CallProblem]:
        """Everything wrong with sending ``name`` in ``language`` with ``values`` (empty: fine)."""
        if not isinstance(name, str) or not name:
            return [CallProblem("template.name", "is required")]
        if name not in self.names():
            known = ", ".join(sorted(self.names())) or "none declared"
            return [CallProblem("template.name", f"no message template named {name!r} (known: {known})")]
        if not isinstance(language, str) or not language:
            return [CallProblem("template.language", "is required")]
        template = self.get(name, language)
        if template is None:
            offered = ", ".join(self.languages(name))
            return [CallProblem("template.language", f"{name} is not declared in {language!r} (only: {offered})")]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return [CallProblem("template.parameters", "must be a list of strings")]
        if len(values) != template.parameter_count:
            count = template.parameter_count
            return [CallProblem("template.parameters", f"{name} takes {count} parameter(s), got {len(values)}")]
        problems = []
        for i, value in enumerate(values):
            if not value.strip():
                problems.append(CallProblem(f"template.parameters[{i}]", "must not be empty"))
            elif _BAD_VALUE.search(value):
                message = "must not hold a newline, a tab or more than 4 spaces in a row (Meta refuses it)"
                problems.append(CallProblem(f"template.parameters[{i}]", message))
        if not problems and len(template.fill(values)) > MAX_BODY:
            message = f"the filled-in body would exceed {MAX_BODY} characters"
            problems.append(CallProblem("template.parameters", message))
        return problems


@dataclass
class CatalogueResult:
    catalogue: Catalogue
    errors: list[LintError]


def parse_catalogue(data: Any, file: str) -> CatalogueResult:
    """Validate catalogue data (``{"templates": [...]}``); a template with errors is left out."""
    if data is None:
        return CatalogueResult(Catalogue(), [])
    if not isinstance(data, dict) or set(data) != {"templates"} or not isinstance(data["templates"], list):
        message = "a message template catalogue holds one key, templates: a list of templates"
        return CatalogueResult(Catalogue(), [LintError(file, None, None, None, message)])
    errors: list[LintError] = []
    found: dict[tuple[str, str], MessageTemplate] = {}
    for index, raw in enumerate(data["templates"]):
        name = raw.get("name") if isinstance(raw, dict) else None
        label = name if isinstance(name, str) else f"templates[{index}]"
        try:
            template = MessageTemplate.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"] if p not in {"quick_reply", "url", "phone_number"})
                message = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
                path = where or "(template)"
                errors.append(LintError(file, label, None, where or None, f"{label}: {path}: {message}"))
            continue
        key = (template.name, template.language)
        if key in found:
            message = f"{template.name}: language: {template.language} is declared twice"
            errors.append(LintError(file, template.name, None, "language", message))
            continue
        found[key] = template
    errors.extend(_cross_language_errors(found.values(), file))
    broken = {e.template for e in errors}
    kept = {key: t for key, t in found.items() if t.name not in broken}
    return CatalogueResult(Catalogue(kept), sorted(set(errors), key=LintError.sort_key))


def _cross_language_errors(templates: Iterable[MessageTemplate], file: str) -> list[LintError]:
    """One template name, one category and one parameter count in every language: a send
    names the template and gives its values without knowing which translation goes out."""
    by_name: dict[str, list[MessageTemplate]] = {}
    for template in templates:
        by_name.setdefault(template.name, []).append(template)
    errors = []
    for name, versions in by_name.items():
        first = versions[0]
        for other in versions[1:]:
            if other.category != first.category:
                message = (
                    f"{name}: category: {other.language} is {other.category}, {first.language} is {first.category}"
                )
                errors.append(LintError(file, name, None, "category", message))
            if other.parameter_count != first.parameter_count:
                message = (
                    f"{name}: body: {other.language} has {other.parameter_count} parameter(s), "
                    f"{first.language} has {first.parameter_count}"
                )
                errors.append(LintError(file, name, None, "body", message))
    return errors


def load_catalogue(directory: Path) -> CatalogueResult:
    """The catalogue of a flow directory; no file means no templates (nothing may be sent
    outside the window), not an error."""
    path = Path(directory) / CATALOGUE_FILE
    if not path.is_file():
        return CatalogueResult(Catalogue(), [])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return CatalogueResult(
            Catalogue(), [LintError(str(path), None, None, None, f"YAML syntax error{where}: {problem}")]
        )
    except (OSError, UnicodeDecodeError) as exc:
        return CatalogueResult(Catalogue(), [LintError(str(path), None, None, None, f"cannot read file: {exc}")])
    return parse_catalogue(data, str(path))
