"""What parley says on its own behalf, per language: the shipped files merged with a deployment's.

``conversation/texts/<language>.yaml`` ships ``en`` (the reference) and ``pt_BR``. A deployment
puts files of the same names in its own folder: for a shipped language they hold only the
keys they change; a language parley does not ship must be complete. ``PARLEY_DEFAULT_LANGUAGE``
says whose texts a customer of no known language gets. Every problem in any file is found at
load, one line each, and the load refuses: a process never starts with a broken text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from babel import Locale

from conversation.texts import checks
from conversation.texts.formats import format_day, format_number, plural_category
from templates.languages import LanguageError, canonical, fallbacks, locale
from templates.placeholders import render

SHIPPED_DIR = Path(__file__).resolve().parent
REFERENCE = "en"


class TextsError(ValueError):
    """The texts cannot load; ``problems`` holds one line per defect."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in parley's texts: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Catalogue:
    """One language's texts, words and formats, complete and checked."""

    language: str
    locale: Locale
    texts: Mapping[str, str | Mapping[str, str]]  # dotted key → text, or its forms per number
    words: Mapping[str, tuple[str, ...]]  # cancel, yes, no
    date_input: tuple[str, ...]  # strptime patterns, most likely first

    def text(self, key: str, /, **values: Any) -> str:
        """The text ``key`` with ``values`` filled in, numbers and dates the language's way.

        A text with forms per number picks the form of ``values["count"]``.
        """
        entry = self.texts[key]
        if not isinstance(entry, str):
            count = values.get("count", 0)
            entry = entry.get(plural_category(count, self.locale)) or entry["other"]
        return render(entry, {name: self.value(v) for name, v in values.items()})

    def value(self, value: Any) -> Any:
        """How ``value`` reads in a text: a number with the locale's separators, a date short."""
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float | Decimal):
            return format_number(value, self.locale)
        if isinstance(value, date):
            return format_day(value, self.locale)
        return value


@dataclass(frozen=True)
class Catalogues:
    """Every language parley can speak in this deployment."""

    default_language: str
    by_language: Mapping[str, Catalogue]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self.by_language))

    @property
    def default(self) -> Catalogue:
        return self.by_language[self.default_language]

    def get(self, language: str | None) -> Catalogue:
        """``language``'s texts: ``pt_PT`` falls back to ``pt``, then to any ``pt_*`` (a
        Portuguese reader is better served by Brazilian Portuguese than by the default), and
        anything else to the default language."""
        if language:
            try:
                code = canonical(language)
            except LanguageError:
                return self.default
            for candidate in fallbacks(code):
                if candidate in self.by_language:
                    return self.by_language[candidate]
            base = code.split("_", 1)[0]
            for candidate in self.languages:
                if candidate.split("_", 1)[0] == base:
                    return self.by_language[candidate]
        return self.default


def _read(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(f"{path}: cannot read: {' '.join(str(exc).split())}")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: must hold a mapping (formats, words, texts)")
        return None
    return data


def _files(folder: Path, problems: list[str]) -> dict[str, Path]:
    """``<language>.yaml`` files of ``folder`` by canonical language."""
    out: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            language = canonical(path.stem)
        except LanguageError as exc:
            problems.append(f"{path}: file name: {exc}")
            continue
        if language != path.stem:
            problems.append(f"{path}: file name: spell the language {language}")
            continue
        out[language] = path
    return out


def _merge(base: Mapping[str, Any] | None, override: Mapping[str, Any] | None, forms: frozenset[str]) -> dict:
    """Section by section; ``texts`` key by key, so an override may give one nested text."""
    merged: dict[str, Any] = {}
    for part in (base or {}, override or {}):
        for section, value in part.items():
            if section == "texts" and isinstance(value, Mapping):
                merged["texts"] = {**merged.get("texts", {}), **checks.flatten(value, forms)}
            elif isinstance(value, Mapping) and isinstance(merged.get(section), Mapping):
                merged[section] = {**merged[section], **value}
            else:
                merged[section] = value
    return merged


def _catalogue(language: str, data: Mapping[str, Any]) -> Catalogue:
    formats = data["formats"]
    return Catalogue(
        language=language,
        locale=locale(canonical(formats["locale"])),
        texts=dict(data["texts"]),
        words={k: tuple(v) for k, v in data["words"].items()},
        date_input=tuple(formats["date_input"]),
    )


def load_catalogues(
    default_language: str = REFERENCE,
    overrides: Path | None = None,
    fallback_text: str | None = None,
    shipped: Path = SHIPPED_DIR,
) -> Catalogues:
    """Shipped texts, merged with the files in ``overrides`` (a folder; absent is fine).

    ``fallback_text`` (the older single-language setting), when given, is the default
    language's fallback. Raises TextsError listing every problem.
    """
    problems: list[str] = []
    ours = _files(shipped, problems)
    theirs = _files(overrides, problems) if overrides is not None and overrides.is_dir() else {}
    reference = _read(ours[REFERENCE], problems) if REFERENCE in ours else None
    if reference is None:
        raise TextsError([*problems, f"{shipped}: the reference texts {REFERENCE}.yaml are missing"])
    forms = checks.forms_keys(reference.get("texts") or {})
    try:
        default = canonical(default_language)
    except LanguageError as exc:
        raise TextsError([f"PARLEY_DEFAULT_LANGUAGE: {exc}"]) from None
    by_language: dict[str, Catalogue] = {}
    for language in sorted(set(ours) | set(theirs)):
        base = _read(ours[language], problems) if language in ours else None
        override = _read(theirs[language], problems) if language in theirs else None
        data = _merge(base, override, forms)
        if language == default and fallback_text:
            data.setdefault("texts", {})["fallback"] = fallback_text
        blamed = theirs.get(language) or ours[language]
        found = checks.problems(data, reference)
        problems += [f"{blamed}: {line}" for line in found]
        if not found:
            by_language[language] = _catalogue(language, data)
    if default not in set(ours) | set(theirs):
        where = f"{shipped}" + (f" or {overrides}" if overrides is not None else "")
        problems.append(f"PARLEY_DEFAULT_LANGUAGE: no texts for {default} (add {default}.yaml to {where})")
    if problems:
        raise TextsError(problems)
    return Catalogues(default, by_language)


@lru_cache(maxsize=1)
def shipped_catalogues() -> Catalogues:
    """The shipped texts alone, English the default: what code without a deployment's
    settings speaks (a unit of the engine, a validation called on its own)."""
    return load_catalogues()


@lru_cache(maxsize=8)
def deployment_catalogues(default_language: str, flows_dir: Path, fallback_text: str | None) -> Catalogues:
    """A deployment's texts, loaded once per process (the settings do not change under it):
    the shipped ones merged with its overrides in ``texts/`` beside its flow files.

    ``fallback_text`` is the older single-language setting; the English default it carries
    when unset is not an override, so a Portuguese default keeps its Portuguese fallback.
    """
    english = shipped_catalogues().get(REFERENCE).texts["fallback"]
    own = fallback_text if fallback_text and fallback_text != english else None
    return load_catalogues(default_language, flows_dir / "texts", own)


def texts_problems(overrides: Path, default_language: str) -> list[str]:
    """Every defect of a deployment's text overrides in ``overrides`` (absent is fine), one line each."""
    try:
        load_catalogues(default_language, overrides)
    except TextsError as exc:
        return exc.problems
    return []
