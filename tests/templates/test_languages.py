"""Language codes (``templates/languages.py``): one spelling, only languages Babel has data for."""

from __future__ import annotations

import pytest

from templates.languages import LanguageError, canonical, fallbacks


@pytest.mark.parametrize(
    ("given", "spelled"), [("en", "en"), ("pt_BR", "pt_BR"), ("pt-br", "pt_BR"), ("ES_419", "es_419")]
)
def test_codes_are_spelled_the_babel_way(given: str, spelled: str) -> None:
    assert canonical(given) == spelled


@pytest.mark.parametrize("given", ["", "portuguese", "pt_BRA", "xx", "pt BR", "en_ZZ"])
def test_unknown_codes_are_refused(given: str) -> None:
    with pytest.raises(LanguageError, match="language"):
        canonical(given)


def test_fallbacks_go_from_territory_to_language() -> None:
    assert fallbacks("pt_BR") == ["pt_BR", "pt"]
    assert fallbacks("en") == ["en"]
