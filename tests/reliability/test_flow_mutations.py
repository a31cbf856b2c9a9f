"""Random mutations of the shipped flow files: what loads can neither strand a customer nor be refused by Meta.

Each example takes the four shipped YAML files, mutates one to three places (deletes a
field, retypes or rewrites a value, points a transition elsewhere, renames or swaps a
step, multiplies buttons or rows, switches a flag), and loads the set as
``flask templates load`` does. The loader must not raise. Whatever loads is then
checked independently of the linter: every message a customer can be shown passes
WhatsApp's limits (``meta_limits.py``), and random customers walking the loaded flows
(``engine_walk.py``) always get a reply, stay on existing steps, and can leave.
"""

from __future__ import annotations

import copy
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.content import interactive, step_messages
from conversation.state import TemplateSet
from conversation.validation import EXPECTED
from templates.loader import load_directory
from templates.message_templates import CATALOGUE_FILE
from tests.reliability.engine_walk import CONFIG, QUIET_OUTCOMES, Walker
from tests.reliability.meta_limits import violations

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
    for p in sorted((ROOT / "templates").glob("*.yaml"))
    if p.name != CATALOGUE_FILE  # message templates, not a flow
}
STEP_NAMES = sorted({s for d in SHIPPED.values() for s in d["menu_structure"]["steps"]})
TARGETS = [*STEP_NAMES, *SHIPPED, *(f"{n}_flow" for n in SHIPPED), "nowhere", "", "Initial"]
JUNK_TEXT = [
    "{order_id}",
    "{unknown}",
    "{profile_name}",
    "{product_title} x {quantity}",
    "{{literal}}",
    "{ bad }",
    "{0}",
    "%s",
    "x" * 25,
    "x" * 61,
    "x" * 1025,
    "x" * 4097,
    "",
    " ",
]
# One valid answer per validation type, so walks get past input steps.
ANSWERS = {"number": "2", "integer": "3", "email": "a@b.co", "phone": "+15551234567", "date": "2026-01-01"}
ANSWERS |= {"decimal": "2.5", "yes_no": "yes", "text": "hello there", "regex": "ORD-000123"}
assert set(ANSWERS) == set(EXPECTED), "an answer for every validation type"


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a document, parents before children."""
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


def parent_of(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


# Ops that often still load are listed more than once, so many mutants get past the loader.
OPS = ["delete", "scalar", "text", "text", "text", "target", "target", "duplicate", "rename_step", "swap_steps"]
OPS += ["flag", "flag", "shuffle", "shuffle"]
plain_text = st.text(st.characters(categories=("L", "N", "Zs", "P"), exclude_characters="{}"), min_size=1, max_size=18)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 100),
    st.sampled_from(JUNK_TEXT),
    st.text(max_size=30),
    st.just([]),
    st.just({}),
)


@st.composite
def mutation(draw: st.DrawFn, doc: dict[str, Any]) -> str:
    """Apply one random mutation to ``doc`` in place; return what was done."""
    everywhere = list(paths(doc))
    path = draw(st.sampled_from(everywhere))
    parent, key = parent_of(doc, path), path[-1]
    steps = doc.get("menu_structure", {}).get("steps") if isinstance(doc.get("menu_structure"), dict) else None
    op = draw(st.sampled_from(OPS))
    if op == "delete":
        del parent[key]
    elif op == "scalar":
        parent[key] = draw(scalars)
    elif op == "text":
        strings = [p for p in everywhere if isinstance(parent_of(doc, p)[p[-1]], str)]
        path = draw(st.sampled_from(strings))
        parent_of(doc, path)[path[-1]] = draw(st.sampled_from(JUNK_TEXT) | st.text(max_size=40) | plain_text)
    elif op == "target":
        where = [p for p in everywhere if "next_step" in p or "next_steps" in p]
        if where:
            path = draw(st.sampled_from(where))
            valid = sorted(steps or {}) + sorted(SHIPPED)
            parent_of(doc, path)[path[-1]] = draw(st.sampled_from(TARGETS) | st.sampled_from(valid))
    elif op == "shuffle":
        lists = [p for p in everywhere if isinstance(parent_of(doc, p)[p[-1]], list)]
        if lists:
            path = draw(st.sampled_from(lists))
            items = parent_of(doc, path)[path[-1]]
            parent_of(doc, path)[path[-1]] = draw(st.permutations(items))
    elif op == "duplicate":
        lists = [p for p in everywhere if isinstance(parent_of(doc, p)[p[-1]], list)]
        if lists:
            path = draw(st.sampled_from(lists))
            items = parent_of(doc, path)[path[-1]]
            if items:
                items.extend(copy.deepcopy(items) * draw(st.integers(1, 4)))
    elif op == "rename_step" and isinstance(steps, dict) and steps:
        old = draw(st.sampled_from(sorted(steps)))
        steps[draw(st.sampled_from([*STEP_NAMES, "renamed", "Bad Name"]))] = steps.pop(old)
    elif op == "swap_steps" and isinstance(steps, dict) and len(steps) > 1:
        a, b = draw(st.lists(st.sampled_from(sorted(steps)), min_size=2, max_size=2, unique=True))
        steps[a], steps[b] = steps[b], steps[a]
    elif op == "flag":
        doc["is_active"] = draw(st.booleans())
        if isinstance(steps, dict) and steps:
            step = steps[draw(st.sampled_from(sorted(steps)))]
            if isinstance(step, dict):
                step["end_conversation"] = draw(st.booleans())
    return f"{op} at {'.'.join(map(str, path))}"


@st.composite
def mutated_flows(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    flows = copy.deepcopy(SHIPPED)
    name = draw(st.sampled_from(sorted(flows)))
    done = [draw(mutation(flows[name])) for _ in range(draw(st.integers(1, 2)))]
    return flows, [f"{name}: {d}" for d in done]


class _Filled(dict):
    """Placeholder values for a static look at messages: every name set, short."""

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(key, "x")


def walk(templates: TemplateSet, rng: random.Random) -> None:
    """Random customers through the loaded flows; ``Walker`` asserts after every message."""
    starts = sorted({kw for t in templates.templates.values() if t.is_active for kw in t.trigger_keywords})
    if not starts:
        return
    for _ in range(8):
        walker = Walker(templates, quiet=QUIET_OUTCOMES | {"completed"})
        walker.send("text", text=rng.choice(starts))
        for _ in range(14):
            conv = walker.state.conversation
            if conv is None:
                walker.send("text", text=rng.choice(starts))
                continue
            template = templates.get(conv.template)
            assert template is not None
            step = template.steps[conv.step]
            options = template.step_options(conv.step)
            roll = rng.random()
            if options and roll < 0.8:
                option = rng.choice(options)
                walker.send("choice", text=option.title, choice_id=option.id)
            elif step.validation is not None and roll < 0.8:
                walker.send("text", text=ANSWERS[step.validation.type])
            elif roll < 0.85:
                walker.send("text", text="hello there")
            elif roll < 0.9:
                walker.send("media")
            elif roll < 0.95:
                walker.send("text", text=rng.choice(CONFIG.cancel_words))
            else:
                walker.wait(30 * 3600)


MUTATIONS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@MUTATIONS
@given(case=mutated_flows(), seed=st.integers(0, 2**16))
def test_what_loads_neither_strands_nor_breaks_meta_limits(case: tuple[dict[str, Any], list[str]], seed: int) -> None:
    flows, done = case
    note(f"mutations: {done}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, doc in flows.items():
            (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        loaded = load_directory(Path(tmp), ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    templates = TemplateSet(loaded.templates)
    for template in loaded.templates.values():
        for content in [interactive(template.entry_message(), _Filled()), *_all_steps(template)]:
            assert not violations(content), f"{template.template_name}: {violations(content)} in {content}"
    walk(templates, random.Random(seed))


def _all_steps(template: Any) -> list[dict[str, Any]]:
    return [c for name in template.steps for c in step_messages(template, name, _Filled())]


def test_the_unmutated_flows_load_and_pass() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, doc in SHIPPED.items():
            (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        loaded = load_directory(Path(tmp), ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    assert loaded.errors == [] and sorted(loaded.templates) == sorted(SHIPPED)
    walk(TemplateSet(loaded.templates), random.Random(1))


def test_a_placeholder_in_a_button_title_cannot_overflow_it() -> None:
    flows = copy.deepcopy(SHIPPED)
    flows["main_menu"]["menu_structure"]["action"]["buttons"][1]["reply"]["title"] = "{profile_name}"
    with tempfile.TemporaryDirectory() as tmp:
        for name, doc in flows.items():
            (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        loaded = load_directory(Path(tmp), ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    walker = Walker(TemplateSet(loaded.templates), profile_name="Maximiliana Montgomery-Smythe")
    walker.send("text", text="hi")  # Walker asserts the reply passes Meta's limits


def test_a_step_that_ends_the_conversation_says_something() -> None:
    flows = copy.deepcopy(SHIPPED)
    del flows["support"]["menu_structure"]["steps"]["faq_done"]["prompt"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, doc in flows.items():
            (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        loaded = load_directory(Path(tmp), ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    assert "support" not in loaded.templates, "a flow whose last step is silent must not load"
