"""Checks of a customer's typed answer against a step's ``validation``, in their language.

Each check returns the value stored in the context (normalized: ints for whole numbers,
decimals as text with a point, ISO dates, ``yes``/``no``) or a reason the answer was
refused. The reasons, the yes/no words, how a number is typed (``3,50`` in Portuguese)
and which date orders are tried come from the language's catalogue (``conversation/texts``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from conversation.texts.catalogue import Catalogue, shipped_catalogues
from conversation.texts.formats import parse_day, parse_number
from templates.normalize import normalize
from templates.schema import Validation

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]{2,}$")
_PHONE_CHARS = re.compile(r"^\+?[0-9 ()\-.]+$")
# Understood in any language: customers mix them in whatever their language.
_YES = {"yes", "y", "ok", "okay", "si", "oui", "ja", "sim"}
_NO = {"no", "n", "non", "nein", "nao"}
# The examples in "Please send ..." texts, written the language's way by the catalogue.
_EXAMPLES: dict[str, Any] = {"number": 2, "decimal": Decimal("2.5"), "date": date(2026, 12, 24)}
KINDS = ("number", "integer", "decimal", "email", "phone", "date", "yes_no", "regex", "text")


def _english() -> Catalogue:
    return shipped_catalogues().get("en")


# What the customer is asked for, in English (the reference).
EXPECTED: dict[str, str] = {kind: _english().text(f"expected.{kind}", example=_EXAMPLES.get(kind)) for kind in KINDS}


@dataclass(frozen=True)
class Checked:
    ok: bool
    value: Any = None
    reason: str = ""


def expected(spec: Validation | None, catalogue: Catalogue | None = None) -> str:
    """What ``spec`` asks the customer for, in the catalogue's language (English when None)."""
    kind = spec.type if spec else "text"
    return (catalogue or _english()).text(f"expected.{kind}", example=_EXAMPLES.get(kind))


class _Checker:
    def __init__(self, spec: Validation, catalogue: Catalogue) -> None:
        self.spec, self.cat = spec, catalogue

    def refuse(self, key: str, **values: Any) -> Checked:
        return Checked(False, reason=self.cat.text(f"invalid.{key}", **values))

    def refuse_expected(self) -> Checked:
        return self.refuse("expected", expected=expected(self.spec, self.cat))

    def bounded(self, number: Decimal, value: Any) -> Checked:
        spec = self.spec
        if spec.min is not None and number < Decimal(str(spec.min)):
            return self.refuse("at_least", min=spec.min)
        if spec.max is not None and number > Decimal(str(spec.max)):
            return self.refuse("at_most", max=spec.max)
        return Checked(True, value)

    def whole(self, text: str, positive: bool) -> Checked:
        if not re.fullmatch(r"[+-]?\d{1,15}", text) or (positive and int(text) < 1):
            return self.refuse_expected()
        return self.bounded(Decimal(int(text)), int(text))

    def decimal(self, text: str) -> Checked:
        number = parse_number(text, self.cat.locale)
        if number is None or not number.is_finite():
            return self.refuse_expected()
        return self.bounded(number, str(number))

    def email(self, text: str) -> Checked:
        return Checked(True, text) if _EMAIL.match(text) else self.refuse_expected()

    def phone(self, text: str) -> Checked:
        digits = re.sub(r"\D", "", text)
        if not _PHONE_CHARS.match(text) or not 7 <= len(digits) <= 15:
            return self.refuse_expected()
        return Checked(True, ("+" if text.startswith("+") else "") + digits)

    def date(self, text: str) -> Checked:
        parsed = parse_day(text, self.cat.date_input)
        return Checked(True, parsed.isoformat()) if parsed is not None else self.refuse_expected()

    def yes_no(self, text: str) -> Checked:
        word = normalize(text)
        if word in _YES | {normalize(w) for w in self.cat.words.get("yes", ())}:
            return Checked(True, "yes")
        if word in _NO | {normalize(w) for w in self.cat.words.get("no", ())}:
            return Checked(True, "no")
        return self.refuse("yes_no")

    def regex(self, text: str) -> Checked:
        assert self.spec.pattern is not None
        return Checked(True, text) if re.fullmatch(self.spec.pattern, text) else self.refuse("regex")

    def check(self, text: str) -> Checked:
        kind = self.spec.type
        if kind in {"number", "integer"}:
            return self.whole(text, positive=kind == "number")
        if kind == "text":
            return Checked(True, text)
        return getattr(self, kind)(text)


def check(answer: str, spec: Validation | None, catalogue: Catalogue | None = None) -> Checked:
    """Validate ``answer``; ``spec`` None means free text (any non-empty text).

    ``catalogue``: the customer's language (English when None).
    """
    cat = catalogue or _english()
    text = answer.strip()
    if not text:
        return Checked(False, reason=cat.text("invalid.empty"))
    if spec is None:
        return Checked(True, text) if len(text) <= 4096 else Checked(False, reason=cat.text("invalid.too_long"))
    if spec.min_length is not None and len(text) < spec.min_length:
        return Checked(False, reason=cat.text("invalid.min_length", count=spec.min_length))
    if spec.max_length is not None and len(text) > spec.max_length:
        return Checked(False, reason=cat.text("invalid.max_length", count=spec.max_length))
    return _Checker(spec, cat).check(text)
