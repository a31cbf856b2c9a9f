"""Flow diagrams (``templates/diagrams.py``): drawn from the engine's own data, never by hand."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from settings import ROOT, load_settings
from templates import diagrams
from templates.diagrams import Edge, build_graph, render, step_id, to_dot, to_mermaid
from templates.lint import transitions
from templates.loader import load_directory
from templates.schema import TemplateDef
from tests.support.services import service_missing

# The registered actions and globals, so the shipped flows load as the service loads them.
SHIPPED = load_directory(ROOT / "templates", actions=ACTION_PROVIDES, globals_=GLOBAL_PLACEHOLDERS).templates


def test_the_shipped_flows_all_load() -> None:
    assert sorted(SHIPPED) == ["account", "cart_order", "language", "main_menu", "new_order", "support"]


def flow(steps: dict[str, Any], keywords: list[str] | None = None) -> TemplateDef:
    return TemplateDef.model_validate(
        {
            "template_name": "t",
            "template_type": "button",
            "trigger_keywords": keywords if keywords is not None else ["t"],
            "menu_structure": {
                "type": "button",
                "body": {"text": "Pick"},
                "action": {
                    "buttons": [{"type": "reply", "reply": {"id": i, "title": i.title()}} for i in ("a", "b", "c")]
                },
                "steps": steps,
            },
        }
    )


def edges_from(g: diagrams.FlowGraph, source: str) -> dict[str, Edge]:
    return {e.target: e for e in g.edges if e.source == step_id(source)}


def need_dot() -> None:
    if shutil.which("dot") is None:
        service_missing("Graphviz dot (apt-get install graphviz)", FileNotFoundError("dot"))


def test_new_order_diagram_shows_steps_options_switches_and_end() -> None:
    g = build_graph(SHIPPED["new_order"], SHIPPED.keys())
    kinds = {n.id: n.kind for n in g.nodes}
    assert kinds == {
        "start": "start",
        "step_initial": "step",
        "step_quantity": "step",
        "step_confirmation": "step",
        "step_complete": "step",
        "template_main_menu": "template",
        "end": "end",
    }
    assert g.node("start").lines == ("keywords: order, buy, purchase",)
    assert g.node("step_initial").lines[0] == "entry list: What would you like to order?"
    assert "validation: number ≤ 50" in g.node("step_quantity").lines
    assert "action: place_order" in g.node("step_complete").lines
    assert "ends the conversation" in g.node("step_complete").lines

    initial = edges_from(g, "initial")["step_quantity"]
    assert initial.label.replace("\n", " ") == "Coffee, Tea, Juice, Sandwich, Salad, Pasta"
    confirmation = edges_from(g, "confirmation")
    assert confirmation["step_complete"].label == "Confirm"
    assert confirmation["step_quantity"].label == "Change quantity"
    assert (confirmation["template_main_menu"].kind, confirmation["template_main_menu"].label) == ("switch", "Cancel")
    quantity = edges_from(g, "quantity")
    assert quantity["step_quantity"].kind == "invalid"  # the error loop
    assert quantity["step_confirmation"].label == "valid number ≤ 50"
    assert edges_from(g, "complete")["end"].kind == "end"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_move_the_engine_can_make_is_an_edge(name: str) -> None:
    t = SHIPPED[name]
    g = build_graph(t, SHIPPED.keys())
    drawn = {(e.source, e.target) for e in g.edges}
    for step in t.steps:
        for _, target in transitions(t, step):
            node = step_id(target) if target in t.steps else f"template_{target.removesuffix('_flow')}"
            assert (step_id(step), node) in drawn, f"{name}: {step} → {target} is not drawn"
        if t.steps[step].end_conversation:
            assert (step_id(step), "end") in drawn


def test_yes_no_branches_fallback_options_and_flow_alias() -> None:
    t = flow(
        {
            "initial": {"next_steps": {"a": "ask"}, "next_step": "support_flow"},
            "ask": {"prompt": "Sure?", "validation": "yes_no", "next_steps": {"yes": "done", "no": "initial"}},
            "done": {"prompt": "Bye", "end_conversation": True},
        },
        keywords=[],
    )
    g = build_graph(t)
    initial = edges_from(g, "initial")
    assert initial["step_ask"].label == "A"
    # b and c have no branch of their own: they share next_step, an alias of template support.
    assert (initial["template_support"].kind, initial["template_support"].label) == ("switch", "B, C")
    ask = edges_from(g, "ask")
    assert (ask["step_done"].label, ask["step_initial"].label) == ("yes", "no")
    assert g.node("start").lines == ("from another flow",)


def test_mermaid_text_escapes_labels_and_highlights_the_current_step() -> None:
    t = flow(
        {
            "initial": {"next_step": "say"},
            "say": {"prompt": 'He said "<hi>" & left', "end_conversation": True},
        }
    )
    text = to_mermaid(build_graph(t), highlight="say")
    assert text.startswith("flowchart TD\n")
    assert "He said #quot;#lt;hi#gt;#quot; #amp; left" in text
    assert "    class step_say current" in text
    assert "step_say --> done" in text  # "end" is a Mermaid keyword
    assert "class step_nope" not in to_mermaid(build_graph(t), highlight="nope")


def test_svg_has_a_stable_id_per_node_and_marks_the_current_one() -> None:
    need_dot()
    svg = render(build_graph(SHIPPED["new_order"], SHIPPED.keys()), "svg", highlight="quantity").decode()
    assert svg.lstrip().startswith("<?xml")
    assert '<g id="step_quantity" class="node step current">' in svg
    assert '<g id="step_confirmation" class="node step">' in svg
    assert '<g id="template_main_menu" class="node template">' in svg
    assert ">Change quantity</text>" in svg


def test_png_is_drawn_by_dot() -> None:
    need_dot()
    png = render(build_graph(SHIPPED["support"]), "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_without_dot_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagrams.shutil, "which", lambda _name: None)
    g = build_graph(flow({"initial": {"next_step": "x"}, "x": {"prompt": "only here", "end_conversation": True}}))
    with pytest.raises(diagrams.GraphvizMissing, match="apt-get install graphviz"):
        render(g, "svg", highlight="x")  # a source no other test renders: not cached


def test_dot_source_quotes_what_it_must() -> None:
    t = flow({"initial": {"next_step": "say"}, "say": {"prompt": 'a "quoted" \\ word', "end_conversation": True}})
    dot = to_dot(build_graph(t))
    assert "a &quot;quoted&quot; \\ word" in dot  # HTML label: entities, no DOT escapes needed
    assert '"step_initial" -> "step_say"' in dot


def test_cli_draws_from_flow_files(tmp_path: Path) -> None:
    need_dot()
    from webhook import create_app

    app = create_app({"SETTINGS": load_settings({"PARLEY_ENV": "test"}), "ENQUEUE": lambda _raw: None})
    runner = app.test_cli_runner()
    mermaid = runner.invoke(args=["templates", "graph", "new_order", "--dir", str(ROOT / "templates")])
    assert mermaid.exit_code == 0, mermaid.output
    assert 'step_confirmation -->|"Confirm"| step_complete' in mermaid.output
    out = tmp_path / "flow.svg"
    args = ["templates", "graph", "support", "--dir", str(ROOT / "templates"), "--format", "svg", "-o", str(out)]
    drawn = runner.invoke(args=[*args, "--highlight", "faq"])
    assert drawn.exit_code == 0, drawn.output
    assert '<g id="step_faq" class="node step current">' in out.read_text()
    missing = runner.invoke(args=["templates", "graph", "nope", "--dir", str(ROOT / "templates")])
    assert missing.exit_code == 1 and "no template named nope" in missing.output


def test_a_handoff_step_is_drawn_as_a_leaf_saying_a_person_takes_over() -> None:
    g = build_graph(SHIPPED["support"], SHIPPED.keys())
    node = next(n for n in g.nodes if n.id == step_id("contact_person"))
    assert "hands the customer to a person" in node.lines
    assert edges_from(g, "contact_person") == {}
    assert step_id("contact_person") in edges_from(g, "initial")
