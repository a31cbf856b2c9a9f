"""Lint of translations (``templates/translation_checks.py``): each defect is one precise line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from templates.loader import load_file
from templates.schema import TemplateDef
from templates.translation_checks import Languages, check_translations, keyword_errors

ROOT = Path(__file__).resolve().parents[2]
FILE = "templates/new_order.yaml"


def new_order() -> TemplateDef:
    template, errors = load_file(ROOT / FILE)
    assert template is not None, errors
    return template


def pt_block() -> dict[str, Any]:
    translations = new_order().translations
    assert translations is not None
    return copy.deepcopy(translations["pt_BR"])


def lines(block: Any, language: str = "pt_BR") -> list[str]:
    return [str(e) for e in check_translations(new_order(), {language: block}, FILE, "en").errors]


def test_a_complete_translation_passes() -> None:
    checked = check_translations(new_order(), {"pt_BR": pt_block()}, FILE, "en")
    assert checked.errors == []
    assert list(checked.translations) == ["pt_BR"]


def test_a_missing_translation_names_the_step_the_field_and_the_english_text() -> None:
    block = pt_block()
    del block["steps"]["quantity"]["error"]
    del block["message"]["options"]["tea"]
    assert lines(block) == [
        f"{FILE}: translations.pt_BR.message.options.tea.description: missing: the en text is 'Black, green or herbal, 2.80'",
        f"{FILE}: translations.pt_BR.message.options.tea.title: missing: the en text is 'Tea'",
        f"{FILE}: step quantity: translations.pt_BR.error: missing: the en text is "
        "'Please send a whole number between 1 and 50, e.g. 2'",
    ]


def test_a_missing_placeholder_is_refused() -> None:
    block = pt_block()
    block["steps"]["complete"]["prompt"] = "Pedido feito! Avisamos quando estiver pronto."
    block["steps"]["confirmation"]["message"]["body"] = "Seu pedido: {quantity} x {produto}. Posso confirmar?"
    assert lines(block) == [
        f"{FILE}: step complete: translations.pt_BR.prompt: placeholder {{order_id}} of the en text is missing",
        f"{FILE}: step confirmation: translations.pt_BR.message.body: placeholder {{product_title}} of the en text is missing",
        f"{FILE}: step confirmation: translations.pt_BR.message.body: placeholder {{produto}} is not in the en text",
    ]


def test_a_too_long_portuguese_title_is_refused_with_the_whatsapp_limit() -> None:
    block = pt_block()
    block["steps"]["confirmation"]["message"]["options"]["change"] = "Alterar a quantidade pedida"
    block["message"]["options"]["sandwich"]["description"] = "x" * 73
    block["message"]["button"] = "Ver todos os produtos"
    assert lines(block) == [
        f"{FILE}: translations.pt_BR.message.button: at most 20 characters (WhatsApp limit for a list's button text), got 21",
        f"{FILE}: translations.pt_BR.message.options.sandwich.description: at most 72 characters "
        "(WhatsApp limit for a row description), got 73",
        f"{FILE}: step confirmation: translations.pt_BR.message.options.change.title: at most 20 characters "
        "(WhatsApp limit for a reply button title), got 27",
    ]


def test_texts_the_flow_does_not_have_are_refused_with_a_guess() -> None:
    block = pt_block()
    block["steps"]["quantiy"] = block["steps"].pop("quantity")
    block["message"]["options"]["cofee"] = block["message"]["options"].pop("coffee")
    found = lines(block)
    assert (
        f"{FILE}: step quantiy: translations.pt_BR.prompt: not a text of this flow (did you mean steps.quantity.prompt?)"
        in found
    )
    assert (
        f"{FILE}: translations.pt_BR.message.options.cofee.title: not a text of this flow "
        "(did you mean message.options.coffee.title?)"
    ) in found
    assert (
        f"{FILE}: step quantity: translations.pt_BR.prompt: missing: the en text is 'How many {{product_title}}? (Enter a number)'"
        in found
    )
    assert len(found) == 8  # 2 unknown + 2 missing for the step, 2 + 2 for the row


def test_repeated_button_titles_and_empty_texts_are_refused() -> None:
    block = pt_block()
    block["steps"]["confirmation"]["message"]["options"]["change"] = "Confirmar"
    block["message"]["footer"] = "  "
    assert lines(block) == [
        f"{FILE}: translations.pt_BR.message.footer: must not be empty",
        f"{FILE}: step confirmation: translations.pt_BR.message.options.change.title: button title 'Confirmar' "
        "is also option confirm's; titles must differ within a message",
    ]


def test_language_codes_and_shape_are_checked() -> None:
    assert lines(pt_block(), "pt-BR") == [f"{FILE}: translations.pt-BR: write the language as pt_BR"]
    assert lines(pt_block(), "klingon") == [
        f"{FILE}: translations.klingon: 'klingon' is not a language code (like en or pt_BR)"
    ]
    english = [str(e) for e in check_translations(new_order(), {"en": pt_block()}, FILE, "en").errors]
    assert english == [f"{FILE}: translations.en: en is the flow's own language; its texts are the flow's fields"]
    block = pt_block()
    block["steps"]["quantity"]["promt"] = "?"
    assert lines(block) == [f"{FILE}: step quantity: translations.pt_BR.promt: unknown field (a typo?)"]
    block = pt_block()
    block["message"]["options"]["coffee"] = {"titel": "Café"}
    block["message"]["options"]["tea"] = 3
    block["steps"]["complete"]["prompt"] = ["Pedido feito!"]
    assert lines(block) == [
        f"{FILE}: translations.pt_BR.message.options.coffee.titel: unknown field (a typo?)",
        f"{FILE}: translations.pt_BR.message.options.coffee.title: is required",
        f"{FILE}: translations.pt_BR.message.options.tea: must be a title, or {{title, description}}",
        f"{FILE}: step complete: translations.pt_BR.prompt: must be a valid string",
    ]
    broken = check_translations(new_order(), ["pt_BR"], FILE, "en")
    assert [str(e) for e in broken.errors] == [f"{FILE}: translations: must map languages to texts"]
    assert check_translations(new_order(), None, FILE, "en").errors == []


def test_a_keyword_belongs_to_one_flow_in_one_language() -> None:
    flows = {
        "main_menu": Languages("main_menu.yaml", "en", {"en": ["hi", "menu"], "pt_BR": ["oi", "olá", "Menu!"]}),
        "new_order": Languages("new_order.yaml", "en", {"en": ["order"], "pt_BR": ["pedido", "Olá"]}),
        "support": Languages("support.yaml", "en", {"en": ["help"], "pt_BR": ["???"]}),
        "old": Languages("old.yaml", "en", {"en": ["ajuda"], "pt_BR": ["pedido"]}, active=False),
    }
    assert [str(e) for e in keyword_errors(flows)] == [
        "main_menu.yaml: translations.pt_BR.trigger_keywords: 'Menu!' is also a keyword of this flow in en ('menu')",
        "main_menu.yaml: translations.pt_BR.trigger_keywords: 'olá' is also a keyword of new_order "
        "(new_order.yaml) in pt_BR ('Olá')",
        "new_order.yaml: translations.pt_BR.trigger_keywords: 'Olá' is also a keyword of main_menu "
        "(main_menu.yaml) in pt_BR ('olá')",
        "support.yaml: translations.pt_BR.trigger_keywords: '???' can never match",
    ]


def test_the_check_does_not_change_what_it_is_given() -> None:
    block = pt_block()
    before = copy.deepcopy(block)
    check_translations(new_order(), {"pt_BR": block}, FILE, "en")
    assert block == before
