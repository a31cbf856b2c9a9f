"""Graph rules (``templates/lint.py``): each rule, broken by a small flow, gives one clear error."""

from __future__ import annotations

from typing import Any

from templates.lint import LintError, lint_definitions
from templates.schema import TemplateDef

ACTIONS = {"place_order": frozenset({"order_id"}), "lookup_order": frozenset({"order_status"})}
GLOBALS = frozenset({"profile_name"})


def buttons(*ids: str) -> dict[str, Any]:
    return {
        "type": "button",
        "body": {"text": "Choose"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": i, "title": i.title()}} for i in ids]},
    }


def flow(
    name: str,
    steps: dict[str, Any],
    *,
    entry: tuple[str, ...] = ("a", "b"),
    keywords: list[str] | None = None,
    active: bool = True,
    body: str = "Choose",
) -> TemplateDef:
    """A button template whose entry message offers ``entry`` as option ids."""
    message = buttons(*entry)
    message["body"] = {"text": body}
    return TemplateDef.model_validate(
        {
            "template_name": name,
            "template_type": "button",
            "trigger_keywords": keywords if keywords is not None else [name],
            "is_active": active,
            "menu_structure": {**message, "steps": steps},
        }
    )


def lint(*templates: TemplateDef) -> list[LintError]:
    defs = {t.template_name: t for t in templates}
    return lint_definitions(defs, {n: f"{n}.yaml" for n in defs}, ACTIONS, GLOBALS)


def lines(*templates: TemplateDef) -> list[str]:
    return [str(e) for e in lint(*templates)]


END = {"prompt": "Bye", "end_conversation": True}


def test_a_good_flow_has_no_errors() -> None:
    t = flow("t", {"initial": {"next_steps": {"a": "done", "b": "other"}}, "done": END})
    other = flow("other", {"initial": {"next_step": "done"}, "done": END})
    assert lint(t, other) == []


def test_error_line_format() -> None:
    error = LintError("templates/x.yaml", "x", "ask", "next_step", "next_step 'y' is not a step of x nor a template")
    assert str(error) == "templates/x.yaml: step ask: next_step 'y' is not a step of x nor a template"
    no_step = LintError("templates/x.yaml", "x", None, "trigger_keywords", "trigger_keywords: 'hi' ...")
    assert str(no_step) == "templates/x.yaml: trigger_keywords: 'hi' ..."
    multi = LintError("f.yaml", None, None, None, "one\ntwo")
    assert "\n" not in str(multi)


# --- rule 1: targets resolve ---------------------------------------------------------


def test_unknown_target() -> None:
    t = flow("t", {"initial": {"next_step": "confirmaton"}, "confirmation": END})
    assert (
        "t.yaml: step initial: next_step 'confirmaton' is not a step of t nor a template; did you mean 'confirmation'?"
    ) in lines(t)


def test_did_you_mean_names_a_close_template_too_and_nothing_when_nothing_is_close() -> None:
    t = flow("t", {"initial": {"next_steps": {"a": "supprot", "b": "zzz"}}, "done": END})
    support = flow("support", {"initial": {"next_step": "done"}, "done": END})
    messages = {e.field: e.message for e in lint(t, support)}
    assert messages["next_steps.a"].endswith("nor a template; did you mean 'support'?")
    assert messages["next_steps.b"] == "next_steps.b 'zzz' is not a step of t nor a template"


def test_unknown_target_in_next_steps() -> None:
    t = flow("t", {"initial": {"next_steps": {"a": "done", "b": "nowhere"}}, "done": END})
    [error] = lint(t)
    assert (error.step, error.field) == ("initial", "next_steps.b")
    assert error.message == "next_steps.b 'nowhere' is not a step of t nor a template"


def test_template_target_and_flow_alias_resolve() -> None:
    t = flow("t", {"initial": {"next_steps": {"a": "other", "b": "other_flow"}}})
    other = flow("other", {"initial": {"next_step": "done"}, "done": END})
    assert lint(t, other) == []


def test_switch_to_inactive_template_is_refused() -> None:
    t = flow("t", {"initial": {"next_step": "other"}})
    other = flow("other", {"initial": {"next_step": "done"}, "done": END}, active=False)
    [error] = lint(t, other)
    assert error.template == "t" and error.field == "next_step" and "not active" in error.message


# --- rule 2: reachability ---------------------------------------------------------------


def test_unreachable_step() -> None:
    t = flow("t", {"initial": {"next_step": "done"}, "done": END, "orphan": END})
    [error] = lint(t)
    assert (error.step, error.message) == ("orphan", "unreachable from initial")


def test_step_only_behind_an_impossible_branch_is_unreachable() -> None:
    # `hidden` is named only by a next_steps key that is not an option: the engine can never go there.
    t = flow("t", {"initial": {"next_steps": {"a": "done", "b": "done", "zzz": "hidden"}}, "done": END, "hidden": END})
    assert {(e.step, e.field) for e in lint(t)} == {("initial", "next_steps.zzz"), ("hidden", None)}


# --- rule 3: every step moves on or ends ------------------------------------------------------


def test_dead_end_step() -> None:
    t = flow("t", {"initial": {"next_step": "ask"}, "ask": {"prompt": "Name?"}})
    [error] = lint(t)
    assert (error.step, error.field) == ("ask", "next_step")
    assert error.message.startswith("next_step missing")


def test_end_step_with_next_step() -> None:
    t = flow("t", {"initial": {"next_step": "done"}, "done": {**END, "next_step": "initial"}})
    [error] = lint(t)
    assert (error.step, error.field) == ("done", "next_step")


def test_end_step_with_validation_and_options() -> None:
    done = {"message": buttons("x"), "validation": "number", "end_conversation": True}
    t = flow("t", {"initial": {"next_step": "done"}, "done": done})
    assert {e.field for e in lint(t)} == {"validation", "message"}


# --- rule 4: choices and branches ---------------------------------------------------------------


def test_option_without_transition() -> None:
    t = flow("t", {"initial": {"next_steps": {"a": "done"}}, "done": END}, entry=("a", "b"))
    [error] = lint(t)
    assert (error.step, error.field) == ("initial", "next_steps")
    assert "option 'b' has no transition" in error.message


def test_next_step_covers_the_other_options() -> None:
    t = flow("t", {"initial": {"next_steps": {"a": "done"}, "next_step": "done"}, "done": END})
    assert lint(t) == []


def test_next_steps_key_must_be_an_option() -> None:
    t = flow("t", {"initial": {"next_steps": {"a": "done", "b": "done", "c": "done"}}, "done": END})
    [error] = lint(t)
    assert error.field == "next_steps.c" and "not an option" in error.message


def test_validation_on_a_choice_step() -> None:
    step = {"message": buttons("x", "y"), "validation": "number", "next_step": "done"}
    t = flow("t", {"initial": {"next_step": "pick"}, "pick": step, "done": END})
    [error] = lint(t)
    assert (error.step, error.field) == ("pick", "validation")


def test_next_steps_on_input_step_needs_yes_no() -> None:
    ask = {"prompt": "Age?", "validation": "number", "next_steps": {"yes": "done"}, "next_step": "done"}
    t = flow("t", {"initial": {"next_step": "ask"}, "ask": ask, "done": END})
    [error] = lint(t)
    assert (error.step, error.field) == ("ask", "next_steps")
    assert "only choice steps and validation yes_no branch" in error.message


def test_yes_no_branches() -> None:
    ask = {"prompt": "Sure?", "validation": "yes_no", "next_steps": {"yes": "done", "no": "initial"}}
    assert lint(flow("t", {"initial": {"next_step": "ask"}, "ask": ask, "done": END})) == []


def test_yes_no_missing_branch_and_bad_key() -> None:
    ask = {"prompt": "Sure?", "validation": "yes_no", "next_steps": {"yes": "done", "maybe": "done"}}
    t = flow("t", {"initial": {"next_step": "ask"}, "ask": ask, "done": END})
    fields = sorted(e.field or "" for e in lint(t))
    assert fields == ["next_steps", "next_steps.maybe"]


# --- rule 5: placeholders --------------------------------------------------------------------------


def test_placeholder_set_on_only_one_branch() -> None:
    t = flow(
        "t",
        {
            "initial": {"next_steps": {"a": "ask_name", "b": "summary"}},
            "ask_name": {"prompt": "Name?", "next_step": "summary"},
            "summary": {"prompt": "Thanks {ask_name}", "end_conversation": True},
        },
    )
    [error] = lint(t)
    assert (error.step, error.field) == ("summary", "prompt")
    assert "placeholder {ask_name} is not set on every path into summary" in error.message
    assert "coming from step initial" in error.message


def test_placeholders_available_on_every_path() -> None:
    t = flow(
        "t",
        {
            "initial": {"context_key": "pick", "next_step": "ask"},
            "ask": {"prompt": "You chose {pick_title} ({pick}). Name, {profile_name}?", "next_step": "done"},
            "done": {"action": "place_order", "prompt": "{ask} ordered, number {order_id}", "end_conversation": True},
        },
    )
    assert lint(t) == []


def test_input_answer_has_no_title() -> None:
    t = flow(
        "t",
        {
            "initial": {"next_step": "ask"},
            "ask": {"prompt": "Name?", "next_step": "done"},
            "done": {**END, "prompt": "{ask_title}"},
        },
    )
    [error] = lint(t)
    assert "placeholder {ask_title}" in error.message


def test_invalid_placeholder() -> None:
    t = flow("t", {"initial": {"next_step": "done"}, "done": {**END, "prompt": "Hi {0.__class__}"}})
    [error] = lint(t)
    assert (error.step, error.field) == ("done", "prompt")
    assert "invalid placeholder {0.__class__}" in error.message


def test_literal_braces_are_fine() -> None:
    t = flow("t", {"initial": {"next_step": "done"}, "done": {**END, "prompt": "Use {{braces}}"}})
    assert lint(t) == []


def test_entry_message_allows_globals_only() -> None:
    assert lint(flow("t", {"initial": {"next_step": "done"}, "done": END}, body="Hi {profile_name}")) == []
    t = flow("t", {"initial": {"next_step": "done"}, "done": END}, body="Hi {initial}")
    [error] = lint(t)
    assert error.step is None and error.field == "menu_structure.body.text"
    assert "placeholder {initial}" in error.message


def test_placeholders_in_button_titles_and_error_text() -> None:
    pick = {"message": buttons("x"), "next_step": "ask"}
    pick["message"]["action"]["buttons"][0]["reply"]["title"] = "{nope}"
    ask = {"prompt": "Age?", "validation": "number", "error": "{also_nope}", "next_step": "done"}
    t = flow("t", {"initial": {"next_step": "pick"}, "pick": pick, "ask": ask, "done": END})
    fields = {(e.step, e.field) for e in lint(t)}
    assert fields == {("pick", "message.action.buttons[0].reply.title"), ("ask", "error")}


def test_action_provides_count_on_entry() -> None:
    http = {"http": "https://example.com/hook", "provides": ["ticket"]}
    t = flow(
        "t",
        {
            "initial": {"next_step": "track"},
            "track": {"action": "lookup_order", "prompt": "{order_status}", "next_step": "ticket"},
            "ticket": {"action": http, "prompt": "Ticket {ticket}, {order_status}", "end_conversation": True},
        },
    )
    assert lint(t) == []


def test_a_switch_starts_with_a_fresh_context() -> None:
    t = flow("t", {"initial": {"context_key": "pick", "next_step": "other"}})
    other = flow("other", {"initial": {"next_step": "done"}, "done": {**END, "prompt": "{pick}"}})
    [error] = lint(t, other)
    assert error.template == "other" and "placeholder {pick}" in error.message


# --- rule 6: actions ----------------------------------------------------------------------------------


def test_unknown_action() -> None:
    t = flow("t", {"initial": {"next_step": "done"}, "done": {**END, "action": "plaec_order"}})
    [error] = lint(t)
    assert (error.step, error.field) == ("done", "action")
    assert "unknown action 'plaec_order'" in error.message


def test_no_actions_registered() -> None:
    t = flow("t", {"initial": {"next_step": "done"}, "done": {**END, "action": "place_order"}})
    [error] = lint_definitions({"t": t}, {"t": "t.yaml"}, None, GLOBALS)
    assert "no actions are registered" in error.message


# --- rule 7: keywords ------------------------------------------------------------------------------


def test_keyword_clash_is_reported_on_both_templates() -> None:
    menu = flow("main_menu", {"initial": {"next_step": "done"}, "done": END}, keywords=["hi", "Help!"])
    support = flow("support", {"initial": {"next_step": "done"}, "done": END}, keywords=["help"])
    assert lines(menu, support) == [
        "main_menu.yaml: trigger_keywords: 'Help!' is also a keyword of support (support.yaml)",
        "support.yaml: trigger_keywords: 'help' is also a keyword of main_menu (main_menu.yaml)",
    ]


def test_inactive_template_keyword_does_not_clash() -> None:
    menu = flow("main_menu", {"initial": {"next_step": "done"}, "done": END}, keywords=["help"], active=False)
    support = flow("support", {"initial": {"next_step": "done"}, "done": END}, keywords=["help"])
    assert lint(menu, support) == []


def test_keyword_without_letters() -> None:
    t = flow("t", {"initial": {"next_step": "done"}, "done": END}, keywords=["!!!"])
    [error] = lint(t)
    assert error.field == "trigger_keywords" and "no letters or digits" in error.message


def test_duplicate_keyword_after_normalizing() -> None:
    t = flow("t", {"initial": {"next_step": "done"}, "done": END}, keywords=["Café", "cafe"])
    [error] = lint(t)
    assert "'cafe' duplicates 'Café'" in error.message


# --- determinism ----------------------------------------------------------------------------------


def test_errors_are_sorted_and_unique() -> None:
    t = flow("t", {"initial": {"next_step": "zz"}, "b": {"prompt": "x"}, "a": {"prompt": "{q}"}})
    errors = lint(t)
    assert errors == sorted(errors, key=LintError.sort_key)
    assert len(errors) == len(set(errors))
    assert lint(t) == errors


def test_an_order_flow_may_use_the_cart_in_its_entry_message_and_later() -> None:
    steps = {"initial": {"next_steps": {"a": "done", "b": "done"}}, "done": {**END, "prompt": "{cart_total} ok"}}
    in_entry = flow("cart", {"initial": steps["initial"], "done": END}, body="You ordered {cart_summary}")
    in_step = flow("cart", steps)
    assert [e.message for e in lint(in_entry)] == [
        "menu_structure.body.text: placeholder {cart_summary} is not available in the entry message"
        " (only globals: profile_name)"
    ]
    assert any("placeholder {cart_total}" in e.message for e in lint(in_step))
    for ok in (in_entry, in_step):
        assert lint(ok.model_copy(update={"trigger": "order"})) == []


def test_a_handoff_step_is_a_leaf_that_needs_no_next_step() -> None:
    person = {"prompt": "A person will answer you here.", "handoff": True}
    t = flow("t", {"initial": {"next_steps": {"a": "person", "b": "done"}}, "person": person, "done": END})
    assert lint(t) == []
    bad = flow("t", {"initial": {"next_step": "person"}, "person": {**person, "next_step": "done"}, "done": END})
    assert sorted((e.step, e.field or "") for e in lint(bad)) == [
        ("done", ""),
        ("person", "next_step"),
    ]  # done: unreachable
    silent = flow("t", {"initial": {"next_step": "person"}, "person": {"handoff": True}})
    assert [(e.step, e.field) for e in lint(silent)] == [("person", "prompt")]
    first = flow("t", {"initial": {"handoff": True, "next_step": "done"}, "done": END})
    assert ("initial", "handoff") in [(e.step, e.field) for e in lint(first)]
