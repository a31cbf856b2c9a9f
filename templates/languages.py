"""Language codes: the one rule for flows, their translations and parley's own texts.

A language is a CLDR locale identifier in Babel's spelling: ``en``, ``pt_BR``, ``es_419``.
A typed ``pt-BR`` or ``pt_br`` is accepted and spelled ``pt_BR``; a code Babel has no data
for is refused, because plural rules and number formats come from that data.
"""

from __future__ import annotations

import re

from babel import Locale, localedata

_CODE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{2}|[0-9]{3}))?$")


class LanguageError(ValueError):
    """Not a language code parley can speak; the message names the code."""


def canonical(code: str) -> str:
    """``code`` in Babel's spelling (``pt-br`` → ``pt_BR``); LanguageError if unknown."""
    match = _CODE.match(code.strip()) if isinstance(code, str) else None
    if match is None:
        raise LanguageError(f"'{code}' is not a language code (like en or pt_BR)")
    language, territory = match.group(1).lower(), match.group(2)
    spelled = f"{language}_{territory.upper()}" if territory else language
    if not localedata.exists(spelled):  # Locale.parse would accept en_ZZ as plain en
        raise LanguageError(f"'{code}' is not a language Babel has data for")
    return spelled


def fallbacks(code: str) -> list[str]:
    """Where to look for ``code``'s texts, most specific first: ``pt_BR`` → [pt_BR, pt]."""
    base = code.split("_", 1)[0]
    return [code] if base == code else [code, base]


def locale(code: str) -> Locale:
    """The Babel locale of a canonical code."""
    return Locale.parse(code)
