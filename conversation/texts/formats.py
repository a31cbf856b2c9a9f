"""Numbers, dates, plural forms and language names the customer's way, from CLDR via Babel.

``3.50`` is written ``3,50`` in Portuguese and ``3.50`` in English; a whole number keeps no
decimals; a typed ``3,50`` reads as 3.50 in Portuguese. Nothing here is hand-written
locale knowledge: the separators, patterns and plural rules are Babel's CLDR data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from babel import Locale
from babel.dates import format_date
from babel.numbers import NumberFormatError, format_decimal, parse_decimal

# A digit run, optionally signed, with separators only between digits.
_NUMERIC = re.compile(r"^[+-]?\d[\d.,\s\u00a0\u202f]*$")


def format_number(value: int | float | Decimal, locale: Locale) -> str:
    """``value`` with the locale's separators, keeping the decimals it was given.

    ``Decimal("3.50")`` keeps both decimals (a price); a float shows what it holds, so
    ``2.5`` → ``2,5`` in pt_BR; an int has no decimals at all.
    """
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    exponent = number.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if isinstance(value, float) and number == number.to_integral_value():
        places = 0
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return format_decimal(number, format=pattern, locale=locale)


def format_day(value: date, locale: Locale) -> str:
    """A date as the locale writes it short: 24/12/2026 in pt_BR and en_GB."""
    return format_date(value, format="short", locale=locale)


def plural_category(count: int | float | Decimal, locale: Locale) -> str:
    """The CLDR plural category of ``count`` (one, few, many, other, ...)."""
    return locale.plural_form(abs(count))


def plural_categories(locale: Locale) -> frozenset[str]:
    """Every category a text with forms per number needs in this locale, ``other`` included."""
    return frozenset(locale.plural_form.tags) | {"other"}


def parse_number(text: str, locale: Locale) -> Decimal | None:
    """A typed number read the locale's way (``3,50`` in pt_BR), else None.

    Strict first, so ``1.234`` in pt_BR is one thousand two hundred thirty-four; a lone
    ``.`` or ``,`` between digits that the locale does not read is taken as the decimal
    mark, because customers type ``3.50`` whatever their language.
    """
    candidate = text.strip()
    if not _NUMERIC.match(candidate):
        return None
    try:
        return parse_decimal(candidate, locale=locale, strict=True)
    except NumberFormatError:
        pass
    if re.fullmatch(r"[+-]?\d+[.,]\d+", candidate):
        try:
            return Decimal(candidate.replace(",", "."))
        except InvalidOperation:
            return None
    return None


def parse_day(text: str, formats: Sequence[str]) -> date | None:
    """The first of ``formats`` (strptime patterns, most likely first) that reads ``text``."""
    for fmt in formats:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def language_name(language: str, locale: Locale | None = None) -> str:
    """A language's own name (``português (Brasil)``), or as ``locale`` calls it."""
    own = Locale.parse(language)
    return own.get_display_name(locale or own) or language
