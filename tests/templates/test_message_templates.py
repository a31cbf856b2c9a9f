"""The message template catalogue: Meta's review rules, send-time checks, flows naming templates.

Pure logic on data: no database or queue is involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from templates.loader import load_directory
from templates.message_templates import CATALOGUE_FILE, load_catalogue, parse_catalogue
from templates.template_uses import FlowTemplateUse, TemplateUse, lint_template_uses

ROOT = Path(__file__).resolve().parents[2]


def entry(**overrides: Any) -> dict[str, Any]:
    base = {
        "name": "order_ready",
        "language": "en_US",
        "category": "UTILITY",
        "body": "Your order {{1}} is ready.",
        "examples": ["ORD-000002"],
    }
    return {**base, **overrides}


def errors_of(*entries: dict[str, Any]) -> list[str]:
    return [e.message for e in parse_catalogue({"templates": list(entries)}, "cat.yaml").errors]


def test_the_shipped_catalogue_is_valid_and_declares_order_ready_with_one_parameter() -> None:
    result = load_catalogue(ROOT / "templates")
    assert result.errors == []
    order_ready = result.catalogue.get("order_ready", "en_US")
    assert order_ready is not None and order_ready.parameter_count == 1
    reminders = [t for t in result.catalogue.templates.values() if "reminder" in t.name]
    assert reminders, "a reminder template ships too"


def test_a_template_goes_in_the_customer_language_where_the_catalogue_has_it() -> None:
    catalogue = load_catalogue(ROOT / "templates").catalogue
    assert catalogue.language_for("order_reminder", "pt_BR", "en_US") == "pt_BR"
    assert catalogue.language_for("order_reminder", "pt", "en_US") == "pt_BR"  # any pt_* variant
    assert catalogue.language_for("order_reminder", "en", "en_US") == "en_US"
    assert catalogue.language_for("order_reminder", "es", "en_US") == "en_US"  # not declared: as named
    assert catalogue.language_for("order_reminder", None, "en_US") == "en_US"
    assert catalogue.language_for("no_such_template", "pt_BR", "en_US") == "en_US"


def test_the_flow_loader_skips_the_catalogue_in_the_same_directory() -> None:
    result = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    assert result.errors == []
    assert (ROOT / "templates" / CATALOGUE_FILE).is_file()
    assert "order_ready" not in result.templates and "main_menu" in result.templates


def test_no_catalogue_file_means_no_templates_and_no_error(tmp_path: Path) -> None:
    result = load_catalogue(tmp_path)
    assert result.errors == [] and result.catalogue.names() == set()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"body": "Order {{1}} and {{3}} are ready.", "examples": ["a", "b"]}, "without gaps"),
        ({"body": "{{1}} is ready."}, "start or end"),
        ({"body": "Your order is {{1}}"}, "start or end"),
        ({"body": "Orders {{1}} {{2}} ready.", "examples": ["a", "b"]}, "side by side"),
        ({"body": "Hello {{name}}, ready."}, "not positional"),
        ({"header": "Order {{1}}"}, "header takes no parameters"),
        ({"footer": "Ref {{1}}"}, "footer takes no parameters"),
        ({"examples": []}, "one sample value per parameter"),
        ({"language": "en-US"}, "not a language code Meta accepts"),
        ({"category": "PROMO"}, "MARKETING"),
        ({"name": "Order-Ready"}, "should match pattern"),
        ({"body": "x" * 1025, "examples": []}, "1024"),
        ({"header": "h" * 61}, "60"),
        ({"buttons": [{"type": "quick_reply", "text": "t" * 26}]}, "25"),
        ({"buttons": [{"type": "quick_reply", "text": f"b{i}"} for i in range(11)]}, "10"),
        (
            {"buttons": [{"type": "url", "text": f"u{i}", "url": "https://example.com"} for i in range(3)]},
            "url buttons",
        ),
        ({"unexpected": 1}, "Extra inputs"),
    ],
)
def test_a_template_meta_would_reject_does_not_load(overrides: dict[str, Any], expected: str) -> None:
    result = parse_catalogue({"templates": [entry(**overrides)]}, "cat.yaml")
    assert result.catalogue.names() == set()
    messages = " | ".join(e.message for e in result.errors)
    assert expected in messages, messages


def test_errors_name_the_file_the_template_and_the_field() -> None:
    [error] = parse_catalogue({"templates": [entry(header="h" * 61)]}, "cat.yaml").errors
    assert (error.file, error.template, error.field) == ("cat.yaml", "order_ready", "header")
    assert str(error).startswith("cat.yaml: order_ready: header:")


def test_one_name_keeps_one_category_and_parameter_count_across_languages() -> None:
    pt = entry(language="pt_BR", category="MARKETING", body="Pedido {{1}} de {{2}} pronto.", examples=["a", "b"])
    messages = errors_of(entry(), pt)
    assert any("category" in m for m in messages) and any("parameter(s)" in m for m in messages)
    assert errors_of(entry(), entry()) == ["order_ready: language: en_US is declared twice"]
    ok = parse_catalogue({"templates": [entry(), entry(language="pt_BR", body="Pedido {{1}} pronto.")]}, "c")
    assert ok.errors == [] and ok.catalogue.languages("order_ready") == ["en_US", "pt_BR"]


def test_a_catalogue_of_another_shape_is_one_error() -> None:
    assert errors_of() == []
    assert parse_catalogue([entry()], "c").errors[0].message.startswith("a message template catalogue holds")


def test_a_yaml_error_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / CATALOGUE_FILE).write_text("templates:\n  - name: [unclosed\n", encoding="utf-8")
    [error] = load_catalogue(tmp_path).errors
    assert "YAML syntax error at line" in error.message


def test_check_call_names_the_field_of_every_send_meta_would_refuse() -> None:
    catalogue = parse_catalogue({"templates": [entry()]}, "c").catalogue
    assert catalogue.check_call("order_ready", "en_US", ["ORD-000002"]) == []

    def field(name: Any, language: Any, values: Any) -> tuple[str, str]:
        [problem] = catalogue.check_call(name, language, values)
        return problem.field, problem.message

    assert field("nope", "en_US", []) == ("template.name", "no message template named 'nope' (known: order_ready)")
    assert field(None, "en_US", [])[0] == "template.name"
    assert field("order_ready", "pt_BR", ["x"]) == (
        "template.language",
        "order_ready is not declared in 'pt_BR' (only: en_US)",
    )
    assert field("order_ready", "en_US", []) == ("template.parameters", "order_ready takes 1 parameter(s), got 0")
    assert field("order_ready", "en_US", [1])[0] == "template.parameters"
    assert field("order_ready", "en_US", ["two\nlines"])[0] == "template.parameters[0]"
    assert field("order_ready", "en_US", ["a     b"])[0] == "template.parameters[0]"
    assert field("order_ready", "en_US", ["  "]) == ("template.parameters[0]", "must not be empty")
    assert "1024" in field("order_ready", "en_US", ["x" * 1020])[1]


def test_fill_puts_each_value_where_its_number_is() -> None:
    template = parse_catalogue(
        {"templates": [entry(body="Hi {{2}}, order {{1}} is ready, {{2}}.", examples=["a", "b"])]}, "c"
    ).catalogue.get("order_ready", "en_US")
    assert template is not None and template.parameter_count == 2
    assert template.fill(["ORD-1", "Ana"]) == "Hi Ana, order ORD-1 is ready, Ana."


def uses(**kw: Any) -> list[FlowTemplateUse]:
    return [
        FlowTemplateUse("templates/new_order.yaml", "new_order", "quantity", "reminder.template", TemplateUse(**kw))
    ]


def test_a_flow_naming_a_template_that_does_not_exist_is_an_error() -> None:
    catalogue = load_catalogue(ROOT / "templates").catalogue
    assert (
        lint_template_uses(uses(name="order_reminder", language="en_US", parameters=["{profile_name}"]), catalogue)
        == []
    )
    [missing] = lint_template_uses(uses(name="order_remind", language="en_US"), catalogue)
    assert (missing.file, missing.step, missing.field) == ("templates/new_order.yaml", "quantity", "reminder.template")
    assert "no message template named 'order_remind'" in missing.message
    # The shipped catalogue declares en_US and pt_BR; Spanish it does not.
    [language] = lint_template_uses(uses(name="order_reminder", language="es", parameters=["x"]), catalogue)
    assert "not declared in 'es'" in language.message
    [count] = lint_template_uses(uses(name="order_reminder", language="en_US"), catalogue)
    assert "takes 1 parameter(s), got 0" in count.message
