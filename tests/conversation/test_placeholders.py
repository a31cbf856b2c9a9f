"""Placeholders are filled once from the flow's text; customer text is never re-interpreted."""

from __future__ import annotations

import pytest

from templates.placeholders import PlaceholderError, placeholders, render


def test_render_fills_names_and_keeps_escaped_braces():
    assert render("Hi {name}, {{literal}}", {"name": "Ann"}) == "Hi Ann, {literal}"


@pytest.mark.parametrize("answer", ["{order_id}", "{0.__class__}", "%s", "{{x}}", "{name!r}"])
def test_customer_text_that_looks_like_a_placeholder_is_shown_literally(answer):
    assert render("You said: {answer}", {"answer": answer, "order_id": "SECRET"}) == f"You said: {answer}"


def test_missing_value_renders_empty():
    assert render("[{nothing}]", {}) == "[]"


def test_only_bare_identifiers_are_placeholders():
    assert placeholders("{a} and {b_2}") == ["a", "b_2"]
    for bad in ["{0}", "{a.b}", "{x[0]}", "{x!r}", "{}"]:
        with pytest.raises(PlaceholderError):
            placeholders(bad)
