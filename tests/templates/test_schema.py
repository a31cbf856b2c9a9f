"""Field-level rules of the flow format (``templates/schema.py``): WhatsApp limits and typos."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from templates.schema import TemplateDef
from templates.template_call import parse_duration

ROOT = Path(__file__).resolve().parents[2]


def shipped(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "templates" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def buttons(*titles: str) -> dict[str, Any]:
    return {"buttons": [{"type": "reply", "reply": {"id": f"b{i}", "title": t}} for i, t in enumerate(titles)]}


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        TemplateDef.model_validate(data)
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in info.value.errors()]


@pytest.mark.parametrize("name", ["main_menu", "new_order", "support", "account"])
def test_shipped_flows_validate(name: str) -> None:
    template = TemplateDef.model_validate(shipped(name))
    assert template.template_name == name
    assert "initial" in template.steps


def test_entry_options_are_initial_options() -> None:
    template = TemplateDef.model_validate(shipped("new_order"))
    ids = [o.id for o in template.step_options("initial")]
    assert ids == ["coffee", "tea", "juice", "sandwich", "salad", "pasta"]
    assert [o.id for o in template.step_options("confirmation")] == ["confirm", "change", "cancel"]
    assert template.step_options("quantity") == []


def test_validation_shorthand() -> None:
    template = TemplateDef.model_validate(shipped("new_order"))
    validation = template.steps["quantity"].validation
    assert validation is not None and validation.type == "number"


def test_button_title_over_20_characters_is_refused() -> None:
    data = shipped("main_menu")
    data["menu_structure"]["action"] = buttons("x" * 21)
    assert any("at most 20 characters" in e for e in errors_of(data))


def test_button_title_of_20_characters_is_accepted() -> None:
    data = shipped("main_menu")
    data["menu_structure"]["action"] = buttons("x" * 20)
    data["menu_structure"]["steps"]["initial"] = {"next_step": "support"}
    TemplateDef.model_validate(data)


def test_four_buttons_are_refused() -> None:
    data = shipped("main_menu")
    data["menu_structure"]["action"] = buttons("a", "b", "c", "d")
    assert any("at most 3 items" in e for e in errors_of(data))


def test_eleven_rows_across_sections_are_refused() -> None:
    data = shipped("new_order")
    sections = data["menu_structure"]["action"]["sections"]
    sections.append({"title": "More", "rows": [{"id": f"extra{i}", "title": f"Extra {i}"} for i in range(5)]})
    assert any("at most 10 rows across all sections" in e for e in errors_of(data))


@pytest.mark.parametrize(
    ("where", "value", "limit"),
    [
        (("action", "button"), "x" * 21, 20),
        (("action", "sections", 0, "title"), "x" * 25, 24),
        (("action", "sections", 0, "rows", 0, "title"), "x" * 25, 24),
        (("action", "sections", 0, "rows", 0, "description"), "x" * 73, 72),
        (("body", "text"), "x" * 1025, 1024),
        (("footer", "text"), "x" * 61, 60),
        (("header", "text"), "x" * 61, 60),
    ],
)
def test_list_limits(where: tuple[str | int, ...], value: str, limit: int) -> None:
    data = shipped("new_order")
    node: Any = data["menu_structure"]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    assert any(f"at most {limit} characters" in e for e in errors_of(data))


def test_unknown_key_is_refused() -> None:
    data = shipped("new_order")
    data["menu_structure"]["steps"]["quantity"]["nxt_step"] = "confirmation"
    assert any("nxt_step" in e and "Extra inputs" in e for e in errors_of(data))


def test_duplicate_option_ids_are_refused() -> None:
    data = shipped("account")
    data["menu_structure"]["action"]["buttons"][1]["reply"]["id"] = "profile"
    assert any("used twice" in e for e in errors_of(data))


def test_reserved_option_prefix_is_refused() -> None:
    data = shipped("account")
    data["menu_structure"]["action"]["buttons"][0]["reply"]["id"] = "parley:retry"
    assert any("reserved prefix" in e for e in errors_of(data))


def test_initial_step_is_required() -> None:
    data = shipped("account")
    data["menu_structure"]["steps"] = {"name": {"prompt": "Name?", "end_conversation": True}}
    assert any("initial" in e for e in errors_of(data))


def test_template_type_must_match_entry_message() -> None:
    data = shipped("account")
    data["template_type"] = "list"
    assert any("does not match" in e for e in errors_of(data))


def test_invalid_regex_is_refused() -> None:
    data = shipped("support")
    data["menu_structure"]["steps"]["order_number"]["validation"] = {"type": "regex", "pattern": "(unclosed"}
    assert any("not a valid regular expression" in e for e in errors_of(data))


def test_template_name_must_be_lower_snake() -> None:
    data = copy.deepcopy(shipped("account"))
    data["template_name"] = "My Account"
    assert any(e.startswith("template_name") for e in errors_of(data))


def test_a_reminder_is_a_duration_with_a_text_or_a_template() -> None:
    confirmation = TemplateDef.model_validate(shipped("new_order")).steps["confirmation"]
    assert confirmation.remind_after == "30m" and confirmation.reminder_template is not None
    assert parse_duration("30m") == timedelta(minutes=30) and parse_duration("2d") == timedelta(days=2)

    def step_errors(**reminder: Any) -> list[str]:
        data = shipped("new_order")
        step = data["menu_structure"]["steps"]["confirmation"]
        for key in ("remind_after", "reminder", "reminder_template"):
            step.pop(key)
        step.update(reminder)
        return errors_of(data)

    assert any("remind_after needs a reminder text or a reminder_template" in e for e in step_errors(remind_after="5m"))
    assert any("a reminder needs remind_after" in e for e in step_errors(reminder="Still there?"))
    assert any("String should match pattern" in e for e in step_errors(remind_after="soon", reminder="x"))
    assert any("at most 30d" in e for e in step_errors(remind_after="31d", reminder="x"))
