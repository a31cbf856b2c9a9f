"""What a language's texts file must hold, checked against the English reference.

Every problem is one line ``{file}: {key}: {what is wrong}``, so a deployment's override
with a typo or a lost ``{placeholder}`` is refused before any customer sees it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from conversation.texts.formats import plural_categories
from templates.languages import LanguageError, canonical, locale
from templates.placeholders import PlaceholderError, placeholders
from templates.schema import MAX_BUTTON_TITLE, MAX_INTERACTIVE_BODY, MAX_TEXT_BODY

Entry = str | dict[str, str]  # a text, or its forms per CLDR plural category
CLDR_CATEGORIES = frozenset({"zero", "one", "two", "few", "many", "other"})
SECTIONS = ("formats", "words", "texts")
# Texts that WhatsApp shows in a tighter place than a text message.
LIMITS = {
    "retry_title": (MAX_BUTTON_TITLE, "a reply button title"),
    "restart_title": (MAX_BUTTON_TITLE, "a reply button title"),
    "cancel_title": (MAX_BUTTON_TITLE, "a reply button title"),
    "way_out": (MAX_INTERACTIVE_BODY, "an interactive message body"),
}
_SAMPLE_DAY = date(2026, 12, 24)


def _is_forms(node: Any) -> bool:
    return isinstance(node, Mapping) and bool(node) and set(node) <= CLDR_CATEGORIES and "other" in node


def flatten(node: Any, forms: frozenset[str] | None = None, prefix: str = "") -> dict[str, Any]:
    """Nested ``texts`` as dotted keys (``invalid.min_length``); forms per number stay one entry.

    ``forms`` names the keys that have forms per number (the reference's); without it, any
    mapping of plural categories is taken as forms. With it, ``media_names: {other: ..}``
    in an override stays the text ``media_names.other``.
    """
    is_forms = prefix in forms if forms is not None and prefix else _is_forms(node)
    if not isinstance(node, Mapping) or is_forms:
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out |= flatten(value, forms, f"{prefix}.{key}" if prefix else str(key))
    return out


def forms_keys(reference_texts: Mapping[str, Any]) -> frozenset[str]:
    """The reference's keys whose entry has forms per number."""
    return frozenset(k for k, v in flatten(reference_texts).items() if _is_forms(v))


def _names(text: str) -> set[str]:
    return set(placeholders(text))


def _text_problems(key: str, entry: Any, reference: Entry, locale_categories: frozenset[str]) -> list[str]:
    if isinstance(reference, str):
        if not isinstance(entry, str):
            return [f"texts.{key}: must be one text, like the English one"]
        return _one_text(f"texts.{key}", key, entry, _names(reference))
    if not _is_forms(entry):
        return [f"texts.{key}: needs a form per number ({', '.join(sorted(locale_categories))})"]
    wanted = set().union(*(_names(t) for t in reference.values()))
    problems = []
    for category in sorted(locale_categories - set(entry)):
        problems.append(f"texts.{key}: form '{category}' missing (this language needs it)")
    for category in sorted(set(entry) - locale_categories):
        problems.append(f"texts.{key}.{category}: this language has no plural form '{category}'")
    for category, text in sorted(entry.items()):
        if category in locale_categories:
            strict = category == "other"  # a 'one' form may say "1" instead of {count}
            problems += _one_text(f"texts.{key}.{category}", key, text, wanted, strict=strict)
    return problems


def _one_text(field: str, key: str, text: Any, wanted: set[str], strict: bool = True) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        return [f"{field}: must be a text, not empty"]
    limit, label = LIMITS.get(key, (MAX_TEXT_BODY, "a text message"))
    problems = []
    if len(text) > limit:
        problems.append(f"{field}: at most {limit} characters (WhatsApp limit for {label}), got {len(text)}")
    try:
        used = _names(text)
    except PlaceholderError as exc:
        return [*problems, f"{field}: {exc}; write {{{{ and }}}} for literal braces"]
    if strict:
        problems += [f"{field}: placeholder {{{p}}} of the English text is missing" for p in sorted(wanted - used)]
    problems += [f"{field}: placeholder {{{p}}} is not in the English text" for p in sorted(used - wanted)]
    return problems


def _formats_problems(formats: Any) -> list[str]:
    if not isinstance(formats, Mapping):
        return ["formats: must hold locale and date_input"]
    problems = [f"formats.{k}: unknown field" for k in sorted(set(formats) - {"locale", "date_input"})]
    try:
        canonical(str(formats.get("locale", "")))
    except LanguageError as exc:
        problems.append(f"formats.locale: {exc}")
    patterns = formats.get("date_input")
    if not isinstance(patterns, list) or not patterns:
        return [*problems, "formats.date_input: must list strptime patterns, e.g. ['%d/%m/%Y']"]
    for i, pattern in enumerate(patterns):
        try:
            ok = datetime.strptime(_SAMPLE_DAY.strftime(str(pattern)), str(pattern)).date() == _SAMPLE_DAY
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"formats.date_input[{i}]: {pattern!r} does not read back a whole date (day, month, year)")
    return problems


def _words_problems(words: Any, reference: Mapping[str, Any]) -> list[str]:
    if not isinstance(words, Mapping):
        return [f"words: must hold {', '.join(reference)}"]
    problems = [f"words.{k}: unknown field" for k in sorted(set(words) - set(reference))]
    for key in reference:
        listed = words.get(key)
        if not isinstance(listed, list) or not listed or not all(isinstance(w, str) and w.strip() for w in listed):
            problems.append(f"words.{key}: must list at least one word")
    return problems


def problems(data: Mapping[str, Any], reference: Mapping[str, Any]) -> list[str]:
    """Everything wrong with one language's merged data, against the English ``reference``."""
    out = [f"{k}: unknown section (sections: {', '.join(SECTIONS)})" for k in data if k not in SECTIONS]
    out += _formats_problems(data.get("formats"))
    out += _words_problems(data.get("words"), reference["words"])
    try:
        categories = plural_categories(locale(canonical(str((data.get("formats") or {}).get("locale", "")))))
    except LanguageError:
        categories = frozenset({"one", "other"})
    wanted = flatten(reference["texts"])
    texts = flatten(data.get("texts") or {}, forms_keys(reference["texts"]))
    for key in sorted(set(wanted) - set(texts)):
        out.append(f"texts.{key}: missing")
    for key in sorted(set(texts) - set(wanted)):
        guess = difflib.get_close_matches(key, list(wanted), n=1, cutoff=0.75)
        out.append(f"texts.{key}: unknown text" + (f" (did you mean {guess[0]}?)" if guess else ""))
    for key in sorted(set(texts) & set(wanted)):
        out += _text_problems(key, texts[key], wanted[key], categories)
    return out
