"""Lint of a flow's ``translations`` block: one ``LintError`` line per defect.

A translation must give every text of the flow's own language (none missing, none that
the flow does not have), keep every ``{placeholder}`` of that text and add none, and keep
every WhatsApp limit (a Portuguese button title is often longer than its English one).
Keywords decide a customer's language, so one keyword belongs to one flow in one language.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from templates.languages import LanguageError, canonical
from templates.lint import LintError
from templates.normalize import normalize
from templates.placeholders import PlaceholderError, placeholders
from templates.schema import TemplateDef
from templates.translations import FlowTranslation, TextSlot, localize, text_slots


@dataclass(frozen=True)
class Checked:
    """The translations that passed, by canonical language, and every defect found."""

    translations: dict[str, FlowTranslation]
    errors: list[LintError]


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 60 else flat[:57] + "...")


class _Report:
    def __init__(self, template: TemplateDef, file: str, language: str) -> None:
        self.template, self.file, self.language = template, file, language
        self.errors: list[LintError] = []

    def add(self, address: str, message: str) -> None:
        """``address`` inside the translation (``steps.quantity.prompt``); steps are named apart."""
        step = None
        if address.startswith("steps."):
            step, _, rest = address.removeprefix("steps.").partition(".")
            address = rest
        field = ".".join(p for p in ("translations", self.language, address) if p)
        name = self.template.template_name
        self.errors.append(LintError(self.file, name, step, field, f"{field}: {message}"))


def _schema_errors(report: _Report, exc: ValidationError) -> None:
    for err in exc.errors():
        loc = list(err["loc"])
        if "str" in loc or "OptionTexts" in loc:  # an option: a title, or {title, description}
            branch = "str" if "str" in loc else "OptionTexts"
            given = err.get("input")
            if branch == "str" or (branch == "OptionTexts" and loc[-1] == "OptionTexts"):
                if branch == "str" and not isinstance(given, dict):
                    report.add(_dotted(loc[: loc.index(branch)]), "must be a title, or {title, description}")
                continue
            loc.remove(branch)
        message = "unknown field (a typo?)" if err["type"] == "extra_forbidden" else err["msg"]
        report.add(_dotted(loc), message.replace("Input should be", "must be").replace("Field required", "is required"))


def _dotted(loc: list[Any]) -> str:
    address = ""
    for part in loc:
        address += f"[{part}]" if isinstance(part, int) else (f".{part}" if address else str(part))
    return address


def _compare(report: _Report, slots: Mapping[str, TextSlot], given: Mapping[str, str], base: str) -> None:
    for address, slot in slots.items():
        if address not in given:
            report.add(address, f"missing: the {base} text is {_quote(slot.text)}")
    for address, text in given.items():
        slot = slots.get(address)
        if slot is None:
            guess = difflib.get_close_matches(address, list(slots), n=1, cutoff=0.8)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            report.add(address, f"not a text of this flow{hint}")
            continue
        if not text.strip():
            report.add(address, "must not be empty")
            continue
        if len(text) > slot.limit:
            report.add(address, f"at most {slot.limit} characters (WhatsApp limit for {slot.label}), got {len(text)}")
        _placeholders(report, address, slot.text, text, base)


def _placeholders(report: _Report, address: str, original: str, text: str, base: str) -> None:
    try:
        used = set(placeholders(text))
    except PlaceholderError as exc:
        report.add(address, f"{exc}; write {{{{ and }}}} for literal braces")
        return
    wanted = set(placeholders(original))  # the flow's own text passed the flow lint
    for name in sorted(wanted - used):
        report.add(address, f"placeholder {{{name}}} of the {base} text is missing")
    for name in sorted(used - wanted):
        report.add(address, f"placeholder {{{name}}} is not in the {base} text")


def _unique_titles(report: _Report, slots: Mapping[str, TextSlot], given: Mapping[str, str]) -> None:
    """Meta refuses a button message whose titles repeat; the schema checks this for the flow's own."""
    by_message: dict[str, dict[str, str]] = {}
    for address, slot in slots.items():
        if slot.label == "a reply button title" and address in given:
            prefix = address.split(".options.", 1)[0]
            by_message.setdefault(prefix, {})[address] = given[address]
    for titles in by_message.values():
        seen: dict[str, str] = {}  # title → option id
        for address, title in titles.items():
            option = address.split(".options.", 1)[1].split(".", 1)[0]
            if title in seen:
                message = f"button title {title!r} is also option {seen[title]}'s; titles must differ within a message"
                report.add(address, message)
            seen.setdefault(title, option)


def check_translations(template: TemplateDef, raw: Any, file: str, base_language: str) -> Checked:
    """Check the ``translations`` block ``raw`` of ``template`` (whose own texts are ``base_language``)."""
    if raw is None:
        return Checked({}, [])
    if not isinstance(raw, Mapping):
        error = LintError(
            file, template.template_name, None, "translations", "translations: must map languages to texts"
        )
        return Checked({}, [error])
    slots = text_slots(template)
    out: dict[str, FlowTranslation] = {}
    errors: list[LintError] = []
    for written, block in raw.items():
        report = _Report(template, file, str(written))
        try:
            language = canonical(str(written))
        except LanguageError as exc:
            report.add("", str(exc))
            errors.extend(report.errors)
            continue
        if language != written:
            report.add("", f"write the language as {language}")
        elif language == base_language:
            report.add("", f"{language} is the flow's own language; its texts are the flow's fields")
        elif language in out:
            report.add("", "given twice")
        try:
            translation = FlowTranslation.model_validate(block if block is not None else {})
        except ValidationError as exc:
            _schema_errors(report, exc)
            errors.extend(report.errors)
            continue
        given = translation.texts()
        _compare(report, slots, given, base_language)
        _unique_titles(report, slots, given)
        if not report.errors:
            try:
                localize(template, translation)
            except ValidationError as exc:  # a limit this module does not know of yet
                for err in exc.errors():
                    where = ".".join(str(p) for p in err["loc"])
                    report.add("", f"the translated flow is refused at {where}: {err['msg']}")
        errors.extend(report.errors)
        if not report.errors:
            out[language] = translation
    return Checked(out, sorted(set(errors), key=LintError.sort_key))


def base_language(template: TemplateDef, default_language: str) -> str:
    """The language of a flow's own texts: its ``language``, else the deployment's default."""
    try:
        return canonical(template.language) if template.language else default_language
    except LanguageError:
        return default_language


def flow_errors(template: TemplateDef, file: str, default_language: str) -> list[LintError]:
    """The flow's ``language`` and every defect of its ``translations``, one line each."""
    name = template.template_name
    if template.language:
        try:
            language = canonical(template.language)
        except LanguageError as exc:
            return [LintError(file, name, None, "language", f"language: {exc}")]
        if language != template.language:
            return [LintError(file, name, None, "language", f"language: write the language as {language}")]
    base = base_language(template, default_language)
    errors = check_translations(template, template.translations, file, base).errors
    return errors + _language_step_errors(template, file, {base, *(template.translations or {})})


# The context key of a step that asks the customer's language (conversation/voice.py).
LANGUAGE_KEY = "language"


def _language_step_errors(template: TemplateDef, file: str, languages: set[str]) -> list[LintError]:
    """A language step's option ids must be languages this flow speaks, spelled canonically."""
    errors = []
    for name, step in template.steps.items():
        if step.key(name) != LANGUAGE_KEY:
            continue
        for option in template.step_options(name):
            try:
                wrong = None if option.id in languages else f"the flow has no {canonical(option.id)} texts"
                if canonical(option.id) != option.id:
                    wrong = f"write the language as {canonical(option.id)}"
            except LanguageError as exc:
                wrong = str(exc)
            if wrong is not None:
                message = f"options.{option.id}: a language step's option ids are language codes: {wrong}"
                errors.append(LintError(file, template.template_name, name, f"options.{option.id}", message))
    return errors


def languages_of(template: TemplateDef, file: str, default_language: str) -> Languages:
    """A flow that passed ``flow_errors``: its keywords by language, for ``keyword_errors``."""
    base = base_language(template, default_language)
    keywords = {base: list(template.trigger_keywords)}
    for language, block in (template.translations or {}).items():
        keywords[language] = list(FlowTranslation.model_validate(block or {}).trigger_keywords)
    return Languages(file, base, keywords, template.is_active)


@dataclass(frozen=True)
class Languages:
    """One flow's keywords by language: its own, then each translation's."""

    file: str
    base_language: str
    keywords: Mapping[str, list[str]]  # language → keywords as written
    active: bool = True


def keyword_errors(flows: Mapping[str, Languages]) -> list[LintError]:
    """A keyword (compared normalized) must start one flow in one language.

    Clashes among the flows' own keywords are the flow lint's; here every clash that involves
    a translation's keyword, and translation keywords that can never match.
    """
    owners: dict[str, list[tuple[str, str, str]]] = {}  # normalized → (flow, language, as written)
    errors: list[LintError] = []
    for name, flow in sorted(flows.items()):
        for language, words in flow.keywords.items():
            for word in words:
                norm = normalize(word)
                own = language == flow.base_language
                if not norm and not own:
                    field = f"translations.{language}.trigger_keywords"
                    errors.append(LintError(flow.file, name, None, field, f"{field}: '{word}' can never match"))
                elif norm and flow.active:
                    owners.setdefault(norm, []).append((name, language, word))
    for claims in owners.values():
        for name, language, word in claims:
            flow = flows[name]
            if language == flow.base_language:
                continue
            for other, other_language, other_word in claims:
                if (other, other_language) == (name, language):
                    continue
                field = f"translations.{language}.trigger_keywords"
                where = "this flow" if other == name else f"{other} ({flows[other].file})"
                message = f"{field}: '{word}' is also a keyword of {where} in {other_language} ('{other_word}')"
                errors.append(LintError(flow.file, name, None, field, message))
    return sorted(set(errors), key=LintError.sort_key)
