"""Loading flow files: YAML, schema and graph errors as one line each; broken flows never load."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from templates.loader import LoadResult, lint_definitions, load_directory, load_file

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "templates"
FIXTURES = Path(__file__).parent / "fixtures"


def load(path: Path) -> LoadResult:
    return load_directory(path, ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)


def copy_shipped(tmp_path: Path) -> Path:
    for file in SHIPPED.glob("*.yaml"):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def small(name: str, keywords: list[str], active: bool = True) -> dict:
    return {
        "template_name": name,
        "template_type": "text",
        "trigger_keywords": keywords,
        "is_active": active,
        "menu_structure": {
            "type": "text",
            "body": {"text": "What is your name?"},
            "steps": {
                "initial": {"next_step": "done"},
                "done": {"prompt": "Thanks {initial}", "end_conversation": True},
            },
        },
    }


def test_shipped_flows_load_without_errors() -> None:
    result = load(SHIPPED)
    assert [str(e) for e in result.errors] == []
    assert sorted(result.templates) == ["account", "cart_order", "language", "main_menu", "new_order", "support"]
    assert result.sources["support"] == SHIPPED / "support.yaml"


def test_help_belongs_to_support_only() -> None:
    result = load(SHIPPED)
    assert "help" in result.templates["support"].trigger_keywords
    assert "help" not in result.templates["main_menu"].trigger_keywords


def test_broken_copy_of_new_order_gives_exactly_three_lines(tmp_path: Path) -> None:
    copy_shipped(tmp_path)
    file = tmp_path / "new_order.yaml"
    text = file.read_text(encoding="utf-8")
    text = text.replace("next_step: confirmation", "next_step: confirmaton")
    text = text.replace('title: "Change quantity"', 'title: "Change the quantity now"')  # 26 > 20
    assert len("Change the quantity") <= 20 < len("Change the quantity now")
    extra = "".join(f'          - {{id: extra{i}, title: "Extra {i}"}}\n' for i in range(5))
    text = text.replace('description: "Tomato and basil, 8.90"}\n', 'description: "Tomato and basil, 8.90"}\n' + extra)
    file.write_text(text, encoding="utf-8")

    result = load(tmp_path)

    lines = [str(e) for e in result.errors]
    assert lines == [
        f"{file}: menu_structure.action: a list holds at most 10 rows across all sections, this one has 11"
        " (WhatsApp limit)",
        f"{file}: step confirmation: message.action.buttons[1].reply.title: at most 20 characters"
        " (WhatsApp limit for a reply button title), got 23",
        f"{file}: step quantity: next_step 'confirmaton' is not a step of new_order nor a template",
    ]
    assert all("\n" not in line for line in lines)
    assert [(e.step, e.field) for e in result.errors] == [
        (None, "menu_structure.action"),
        ("confirmation", "message.action.buttons[1].reply.title"),
        ("quantity", "next_step"),
    ]
    assert "new_order" not in result.templates
    # The others still load; main_menu's switch to the broken new_order is not a second error.
    assert sorted(result.templates) == ["account", "cart_order", "language", "main_menu", "support"]


def test_yaml_syntax_error_names_file_and_line() -> None:
    template, errors = load_file(FIXTURES / "syntax_error.yaml")
    assert template is None
    [error] = errors
    line = str(error)
    assert line.startswith(f"{FIXTURES / 'syntax_error.yaml'}: YAML syntax error at line ")
    assert "line 7," in line  # the line after the unclosed flow mapping on line 6


def test_unknown_key_is_reported(tmp_path: Path) -> None:
    data = small("t", ["name"])
    data["menu_structure"]["steps"]["initial"]["nxt_step"] = "done"
    template, errors = load_file(write(tmp_path / "t.yaml", data))
    assert template is None
    assert [str(e) for e in errors] == [
        f"{tmp_path / 't.yaml'}: step initial: nxt_step: unknown field (did you mean next_step?)"
    ]


def test_unknown_key_far_from_any_field_is_still_reported(tmp_path: Path) -> None:
    data = small("t", ["name"])
    data["menu_structure"]["steps"]["done"]["zzz"] = 1
    _, errors = load_file(write(tmp_path / "t.yaml", data))
    assert [e.message for e in errors] == ["zzz: unknown field (a typo?)"]


def test_limit_messages_name_the_whatsapp_limit(tmp_path: Path) -> None:
    data = small("t", ["name"])
    data["menu_structure"]["steps"]["done"]["message"] = {
        "type": "button",
        "header": {"type": "text", "text": "h" * 61},
        "body": {"text": "b" * 1025},
        "action": {"buttons": [{"type": "reply", "reply": {"id": f"b{i}", "title": f"B{i}"}} for i in range(4)]},
    }
    _, errors = load_file(write(tmp_path / "t.yaml", data))
    assert [e.message for e in errors] == [
        "message.action.buttons: at most 3 reply buttons per message (WhatsApp limit), got 4",
        "message.body.text: at most 1024 characters (WhatsApp limit for an interactive message body), got 1025",
        "message.header.text: at most 60 characters (WhatsApp limit for a header), got 61",
    ]


YES_NO_FLOW = """\
template_name: t
template_type: button
trigger_keywords: [updates]
menu_structure:
  type: button
  body: {text: "Order updates on WhatsApp?"}
  action:
    buttons:
      - {type: reply, reply: {id: yes, title: "Yes"}}
      - {type: reply, reply: {id: no, title: "No"}}
  steps:
    initial:
      next_steps: {yes: on, no: off}
    on: {prompt: "On.", end_conversation: true}
    off: {prompt: "Off.", end_conversation: yes}
"""


def test_yes_no_on_off_stay_text_in_flow_yaml(tmp_path: Path) -> None:
    # PyYAML's YAML 1.1 would read these as booleans: option ids True/False, steps named True/False.
    (tmp_path / "t.yaml").write_text(YES_NO_FLOW, encoding="utf-8")
    template, errors = load_file(tmp_path / "t.yaml")
    assert errors == []
    assert template is not None
    assert [o.id for o in template.step_options("initial")] == ["yes", "no"]
    assert template.steps["initial"].next_steps == {"yes": "on", "no": "off"}
    assert template.steps["off"].end_conversation is True  # a bool field still takes yes
    assert load(tmp_path).errors == []


def test_duplicate_key_in_yaml_names_the_line(tmp_path: Path) -> None:
    text = YES_NO_FLOW.replace('    off: {prompt: "Off."', '    on: {prompt: "Again."}\n    off: {prompt: "Off."')
    (tmp_path / "t.yaml").write_text(text, encoding="utf-8")
    template, [error] = load_file(tmp_path / "t.yaml")
    assert template is None
    assert str(error).startswith(f"{tmp_path / 't.yaml'}: YAML syntax error at line 15, column 5: duplicate key 'on'")


def test_file_name_must_match_template_name(tmp_path: Path) -> None:
    template, errors = load_file(write(tmp_path / "other.yaml", small("t", ["name"])))
    assert template is None
    [error] = errors
    assert error.field == "template_name" and "must match the file name 'other'" in error.message


def test_a_file_must_hold_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    template, errors = load_file(tmp_path / "t.yaml")
    assert template is None and len(errors) == 1


def test_schema_error_names_step_and_dotted_field(tmp_path: Path) -> None:
    data = small("t", ["name"])
    data["menu_structure"]["steps"]["done"]["message"] = {
        "type": "list",
        "body": {"text": "Pick"},
        "action": {
            "button": "A list button too long",
            "sections": [{"title": "S", "rows": [{"id": "r", "title": "R"}]}],
        },
    }
    _, errors = load_file(write(tmp_path / "t.yaml", data))
    assert [(e.step, e.field) for e in errors] == [("done", "message.action.button")]
    assert (
        errors[0].message
        == "message.action.button: at most 20 characters (WhatsApp limit for a list's button text), got 22"
    )


def test_keyword_clash_is_reported_on_both_files(tmp_path: Path) -> None:
    write(tmp_path / "alpha.yaml", small("alpha", ["hello", "help"]))
    write(tmp_path / "beta.yaml", small("beta", ["Help!"]))
    result = load(tmp_path)
    assert [str(e) for e in result.errors] == [
        f"{tmp_path / 'alpha.yaml'}: trigger_keywords: 'help' is also a keyword of beta ({tmp_path / 'beta.yaml'})",
        f"{tmp_path / 'beta.yaml'}: trigger_keywords: 'Help!' is also a keyword of alpha ({tmp_path / 'alpha.yaml'})",
    ]
    assert result.templates == {}


def test_inactive_template_keyword_does_not_clash(tmp_path: Path) -> None:
    write(tmp_path / "alpha.yaml", small("alpha", ["help"]))
    write(tmp_path / "beta.yaml", small("beta", ["help"], active=False))
    result = load(tmp_path)
    assert result.errors == []
    assert sorted(result.templates) == ["alpha", "beta"]


def test_duplicate_template_name_across_files(tmp_path: Path) -> None:
    write(tmp_path / "alpha.yaml", small("alpha", ["one"]))
    write(tmp_path / "alpha.yml", small("alpha", ["two"]))
    result = load(tmp_path)
    assert any("is also defined in" in e.message for e in result.errors)
    assert "alpha" not in result.templates


def test_a_template_with_a_graph_error_does_not_load(tmp_path: Path) -> None:
    write(tmp_path / "alpha.yaml", small("alpha", ["one"]))
    bad = small("beta", ["two"])
    bad["menu_structure"]["steps"]["done"]["prompt"] = "Thanks {nobody}"
    write(tmp_path / "beta.yaml", bad)
    result = load(tmp_path)
    assert list(result.templates) == ["alpha"]
    [error] = result.errors
    assert error.template == "beta" and error.step == "done" and error.field == "prompt"


def test_unknown_action_with_the_real_registry(tmp_path: Path) -> None:
    data = small("t", ["name"])
    data["menu_structure"]["steps"]["done"]["action"] = "send_rocket"
    write(tmp_path / "t.yaml", data)
    [error] = load(tmp_path).errors
    assert error.step == "done" and error.field == "action" and "place_order" in error.message


def test_lint_definitions_for_templates_from_the_database() -> None:
    shipped = load(SHIPPED).templates
    sources = {name: f"template {name}" for name in shipped}
    assert lint_definitions(shipped, sources, ACTION_PROVIDES, GLOBAL_PLACEHOLDERS) == []
    without_new_order = {n: t for n, t in shipped.items() if n != "new_order"}
    errors = lint_definitions(without_new_order, sources, ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    assert [str(e) for e in errors] == [
        "template main_menu: step initial: next_steps.new_order 'new_order' is not a step of main_menu nor a template"
    ]
