"""Checks of a customer's typed answer against a step's ``validation``.

Each check returns the value stored in the context (normalized: ints for whole numbers,
ISO dates, ``yes``/``no``) or a reason the answer was refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from templates.normalize import normalize
from templates.schema import Validation

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]{2,}$")
_PHONE_CHARS = re.compile(r"^\+?[0-9 ()\-.]+$")
_YES = {"yes", "y", "yeah", "yep", "sure", "ok", "okay", "si", "oui", "ja", "sim"}
_NO = {"no", "n", "nope", "nah", "non", "nein", "nao"}
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y")

# What the customer is asked for, used in default error texts and media replies.
EXPECTED: dict[str, str] = {
    "number": "a whole number greater than zero, e.g. 2",
    "integer": "a whole number",
    "decimal": "a number, e.g. 2.5",
    "email": "an email address, e.g. name@example.com",
    "phone": "a phone number with its country code, e.g. +44 20 7946 0000",
    "date": "a date, e.g. 2026-12-24 or 24/12/2026",
    "yes_no": "yes or no",
    "regex": "an answer in the expected format",
    "text": "a text answer",
}


@dataclass(frozen=True)
class Checked:
    ok: bool
    value: Any = None
    reason: str = ""


def expected(spec: Validation | None) -> str:
    return EXPECTED[spec.type] if spec else "a text answer"


def _bounds(spec: Validation, number: Decimal) -> str:
    if spec.min is not None and number < Decimal(str(spec.min)):
        return f"at least {spec.min:g}"
    if spec.max is not None and number > Decimal(str(spec.max)):
        return f"at most {spec.max:g}"
    return ""


def check(answer: str, spec: Validation | None) -> Checked:
    """Validate ``answer``; ``spec`` None means free text (any non-empty text)."""
    text = answer.strip()
    if not text:
        return Checked(False, reason="The answer is empty.")
    if spec is None:
        return Checked(True, text) if len(text) <= 4096 else Checked(False, reason="That answer is too long.")
    if spec.min_length is not None and len(text) < spec.min_length:
        return Checked(False, reason=f"Please send at least {spec.min_length} characters.")
    if spec.max_length is not None and len(text) > spec.max_length:
        return Checked(False, reason=f"Please send at most {spec.max_length} characters.")
    return _CHECKS[spec.type](text, spec)


def _whole(text: str, spec: Validation, positive: bool) -> Checked:
    if not re.fullmatch(r"[+-]?\d{1,15}", text):
        return Checked(False, reason=f"Please send {EXPECTED['number' if positive else 'integer']}.")
    value = int(text)
    if positive and value < 1:
        return Checked(False, reason=f"Please send {EXPECTED['number']}.")
    out_of = _bounds(spec, Decimal(value))
    return Checked(False, reason=f"Please send a number {out_of}.") if out_of else Checked(True, value)


def _decimal(text: str, spec: Validation) -> Checked:
    candidate = text.replace(",", ".") if text.count(",") == 1 and "." not in text else text
    try:
        number = Decimal(candidate)
    except InvalidOperation:
        return Checked(False, reason=f"Please send {EXPECTED['decimal']}.")
    if not number.is_finite():
        return Checked(False, reason=f"Please send {EXPECTED['decimal']}.")
    out_of = _bounds(spec, number)
    return Checked(False, reason=f"Please send a number {out_of}.") if out_of else Checked(True, str(number))


def _email(text: str, _spec: Validation) -> Checked:
    return Checked(True, text) if _EMAIL.match(text) else Checked(False, reason=f"Please send {EXPECTED['email']}.")


def _phone(text: str, _spec: Validation) -> Checked:
    digits = re.sub(r"\D", "", text)
    if not _PHONE_CHARS.match(text) or not 7 <= len(digits) <= 15:
        return Checked(False, reason=f"Please send {EXPECTED['phone']}.")
    return Checked(True, ("+" if text.startswith("+") else "") + digits)


def _date(text: str, _spec: Validation) -> Checked:
    for fmt in _DATE_FORMATS:
        try:
            parsed: date = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        return Checked(True, parsed.isoformat())
    return Checked(False, reason=f"Please send {EXPECTED['date']}.")


def _yes_no(text: str, _spec: Validation) -> Checked:
    word = normalize(text)
    if word in _YES:
        return Checked(True, "yes")
    if word in _NO:
        return Checked(True, "no")
    return Checked(False, reason="Please answer yes or no.")


def _regex(text: str, spec: Validation) -> Checked:
    assert spec.pattern is not None
    ok = re.fullmatch(spec.pattern, text) is not None
    return Checked(True, text) if ok else Checked(False, reason="That doesn't look right, please check and try again.")


def _text(text: str, _spec: Validation) -> Checked:
    return Checked(True, text)


_CHECKS = {
    "number": lambda t, s: _whole(t, s, positive=True),
    "integer": lambda t, s: _whole(t, s, positive=False),
    "decimal": _decimal,
    "email": _email,
    "phone": _phone,
    "date": _date,
    "yes_no": _yes_no,
    "regex": _regex,
    "text": _text,
}
