"""The translations block (``templates/translations.py``): text addresses and localized flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from templates.lint import lint_definitions
from templates.loader import load_file
from templates.schema import TemplateDef
from templates.translation_checks import Languages, check_translations, keyword_errors
from templates.translations import FlowTranslation, localize, text_slots

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("account", "language", "main_menu", "new_order", "support")
ACTIONS = {
    "place_order": frozenset({"order_id"}),
    "lookup_order": frozenset({"order_status"}),
    "recent_orders": frozenset({"orders_summary"}),
}


def shipped(name: str) -> TemplateDef:
    template, errors = load_file(ROOT / "templates" / f"{name}.yaml")
    assert template is not None, errors
    return template


def portuguese(name: str) -> FlowTranslation:
    translations = shipped(name).translations
    assert translations is not None
    return FlowTranslation.model_validate(translations["pt_BR"])


def test_every_text_of_a_flow_has_an_address_and_its_limit() -> None:
    slots = text_slots(shipped("new_order"))
    assert slots["message.header"].text == "Our menu"
    assert slots["message.button"].limit == 20
    assert slots["message.sections[1]"].text == "Food"
    assert (slots["message.options.coffee.title"].limit, slots["message.options.coffee.title"].label) == (
        24,
        "a list row title",
    )
    assert slots["message.options.coffee.description"].limit == 72
    assert slots["steps.quantity.prompt"].limit == 4096
    assert slots["steps.quantity.error"].text == "Please send a whole number between 1 and 50, e.g. 2"
    title = slots["steps.confirmation.message.options.change.title"]
    assert (title.text, title.limit, title.label) == ("Change quantity", 20, "a reply button title")
    assert slots["steps.confirmation.message.body"].limit == 1024
    assert "steps.complete.prompt" in slots
    assert not any(".id" in address for address in slots)  # ids are shared, never translated
    assert len(slots) == 25  # entry 18 (header, body, footer, button, 2 sections, 6 rows x 2), steps 7


@pytest.mark.parametrize("name", SHIPPED)
def test_the_portuguese_of_each_shipped_flow_is_complete(name: str) -> None:
    template = shipped(name)
    checked = check_translations(template, {"pt_BR": portuguese(name).model_dump()}, f"{name}.yaml", "en")
    assert [str(e) for e in checked.errors] == []
    assert set(portuguese(name).texts()) == set(text_slots(template))


def test_a_localized_flow_keeps_ids_and_graph_and_says_portuguese() -> None:
    english = shipped("new_order")
    pt = localize(english, portuguese("new_order"))
    assert pt.template_name == english.template_name
    assert pt.trigger_keywords == ["pedido", "pedir", "comprar"]
    assert [o.id for o in pt.step_options("initial")] == [o.id for o in english.step_options("initial")]
    assert pt.step_options("initial")[0].title == "Café"
    assert [o.title for o in pt.step_options("confirmation")] == ["Confirmar", "Alterar quantidade", "Cancelar"]
    for name, step in english.steps.items():
        assert pt.steps[name].next_step == step.next_step
        assert pt.steps[name].next_steps == step.next_steps
        assert pt.steps[name].validation == step.validation
        assert pt.steps[name].action == step.action
    assert pt.steps["quantity"].prompt == "Quantas unidades de {product_title} você quer? (Envie um número)"
    assert pt.entry_message()["action"]["sections"][0]["title"] == "Bebidas"
    assert english.steps["quantity"].prompt == "How many {product_title}? (Enter a number)"  # not changed in place


def test_localized_flows_pass_the_flow_lint() -> None:
    localized = {name: localize(shipped(name), portuguese(name)) for name in SHIPPED}
    sources = {name: f"{name}.yaml" for name in SHIPPED}
    assert lint_definitions(localized, sources, ACTIONS, frozenset({"profile_name"})) == []


def test_the_portuguese_keywords_start_one_flow_each() -> None:
    flows = {
        name: Languages(
            f"{name}.yaml",
            "en",
            {"en": shipped(name).trigger_keywords, "pt_BR": portuguese(name).trigger_keywords},
        )
        for name in SHIPPED
    }
    assert keyword_errors(flows) == []
    assert portuguese("main_menu").trigger_keywords == ["oi", "olá"]
