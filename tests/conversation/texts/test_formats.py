"""Numbers, dates and plural forms the customer's way (``conversation/texts/formats.py``, Babel)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from babel import Locale

from conversation.texts.formats import (
    format_day,
    format_number,
    language_name,
    parse_day,
    parse_number,
    plural_categories,
    plural_category,
)

PT, EN = Locale.parse("pt_BR"), Locale.parse("en_GB")


@pytest.mark.parametrize(
    ("value", "pt", "en"),
    [
        (Decimal("3.50"), "3,50", "3.50"),  # a price keeps its two decimals
        (2.5, "2,5", "2.5"),
        (50.0, "50", "50"),  # a float bound that is whole shows no decimals
        (1234, "1.234", "1,234"),
        (Decimal("1234567.8"), "1.234.567,8", "1,234,567.8"),
        (-3, "-3", "-3"),
    ],
)
def test_numbers_use_the_locale_separators(value: int | float | Decimal, pt: str, en: str) -> None:
    assert format_number(value, PT) == pt
    assert format_number(value, EN) == en


def test_dates_are_written_short_the_locale_way() -> None:
    assert format_day(date(2026, 12, 24), PT) == "24/12/2026"
    assert format_day(date(2026, 12, 24), EN) == "24/12/2026"
    assert format_day(date(2026, 12, 24), Locale.parse("en_US")) == "12/24/26"


def test_plural_categories_follow_cldr() -> None:
    # Portuguese counts 0 and 1 as "one", a million as "many" ("1 milhão de caracteres").
    assert [plural_category(n, PT) for n in (0, 1, 2, 5, 1_000_000)] == ["one", "one", "other", "other", "many"]
    assert [plural_category(n, EN) for n in (0, 1, 2)] == ["other", "one", "other"]
    assert plural_categories(PT) == {"one", "many", "other"}
    assert plural_categories(EN) == {"one", "other"}


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("3,50", PT, Decimal("3.50")),
        ("1.234,5", PT, Decimal("1234.5")),
        ("3.50", PT, Decimal("3.50")),  # typed the English way: a lone mark is the decimal one
        ("1,234.5", EN, Decimal("1234.5")),
        ("3.50", EN, Decimal("3.50")),
        ("3,5", EN, Decimal("3.5")),
        ("12", PT, Decimal("12")),
        ("-2", EN, Decimal("-2")),
        ("três", PT, None),
        ("3,50 reais", PT, None),
        ("", EN, None),
        ("1.2.3", EN, None),
    ],
)
def test_typed_numbers_are_read_the_locale_way(text: str, locale: Locale, expected: Decimal | None) -> None:
    assert parse_number(text, locale) == expected


def test_dates_are_read_by_the_first_pattern_that_fits() -> None:
    day_first = ["%d/%m/%Y", "%Y-%m-%d"]
    assert parse_day("24/12/2026", day_first) == date(2026, 12, 24)
    assert parse_day(" 2026-12-24 ", day_first) == date(2026, 12, 24)
    assert parse_day("12/24/2026", day_first) is None  # no 24th month
    assert parse_day("amanhã", day_first) is None


def test_language_names_are_their_own() -> None:
    assert language_name("pt_BR") == "português (Brasil)"
    assert language_name("en") == "English"
    assert language_name("pt_BR", Locale.parse("en")) == "Portuguese (Brazil)"
