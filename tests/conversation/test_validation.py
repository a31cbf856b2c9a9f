"""Answer validation per ``validation`` type."""

from __future__ import annotations

import pytest

from conversation.validation import check
from templates.schema import Validation


def v(kind: str, **kw) -> Validation:
    return Validation(type=kind, **kw)


@pytest.mark.parametrize(("answer", "value"), [("2", 2), (" 10 ", 10), ("007", 7)])
def test_number_accepts_positive_whole_numbers(answer, value):
    assert check(answer, v("number")).value == value


@pytest.mark.parametrize("answer", ["0", "-1", "2.5", "two", "", "1e3", "99999999999999999"])
def test_number_refuses_everything_else(answer):
    assert not check(answer, v("number")).ok


def test_integer_and_decimal_bounds():
    assert check("-3", v("integer", min=-5, max=5)).value == -3
    refused = check("6", v("integer", min=-5, max=5))
    assert not refused.ok and "at most 5" in refused.reason
    assert check("2,5", v("decimal", min=1)).value == "2.5"
    assert not check("0.5", v("decimal", min=1)).ok
    assert not check("NaN", v("decimal")).ok


def test_email_phone_date_yes_no():
    assert check("ann@example.com", v("email")).ok
    assert not check("ann@", v("email")).ok
    assert check("+44 20 7946 0000", v("phone")).value == "+442079460000"
    assert not check("12", v("phone")).ok
    assert check("24/12/2026", v("date")).value == "2026-12-24"
    assert not check("31/02/2026", v("date")).ok
    assert check("Yes!", v("yes_no")).value == "yes"
    assert check("nope", v("yes_no")).value == "no"
    assert not check("maybe", v("yes_no")).ok


def test_regex_must_match_the_whole_answer():
    spec = v("regex", pattern=r"ORD-\d+")
    assert check("ORD-12", spec).ok
    assert not check("my ORD-12", spec).ok


def test_text_length_bounds():
    spec = v("text", min_length=5, max_length=10)
    assert not check("abc", spec).ok
    assert not check("a" * 11, spec).ok
    assert check("hello", spec).value == "hello"


def test_free_text_without_validation_needs_something():
    assert check("anything", None).ok
    assert not check("   ", None).ok
