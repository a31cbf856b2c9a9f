"""Graph rules over a set of validated templates: nothing that could strand a customer loads.

Mirrors the engine (``conversation/engine.py``): a step with options is a choice step,
otherwise an input step; a target is a step of the same template, else a template, else
``<name>_flow`` as an alias of template ``<name>``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from templates.normalize import normalize
from templates.placeholders import PlaceholderError, placeholders
from templates.schema import HttpAction, Step, TemplateDef

INITIAL = "initial"
ALIAS_SUFFIX = "_flow"


@dataclass(frozen=True)
class LintError:
    file: str
    template: str | None
    step: str | None
    field: str | None
    message: str

    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.file, self.step or "", self.field or "", self.message)

    def __str__(self) -> str:
        where = f"step {self.step}: " if self.step else ""
        return f"{self.file}: {where}{self.message}"


def resolve_template(target: str, templates: Mapping[str, TemplateDef]) -> str | None:
    if target in templates:
        return target
    if target.endswith(ALIAS_SUFFIX) and target[: -len(ALIAS_SUFFIX)] in templates:
        return target[: -len(ALIAS_SUFFIX)]
    return None


def targets(template: TemplateDef, name: str) -> list[tuple[str, str]]:
    """(field, target) pairs of step ``name``."""
    step = template.steps[name]
    out = [("next_step", step.next_step)] if step.next_step else []
    out += [(f"next_steps.{key}", value) for key, value in (step.next_steps or {}).items()]
    return out


def _texts(step: Step) -> Iterator[tuple[str, str]]:
    """(field, text) of everything shown on entering the step."""
    if step.prompt:
        yield "prompt", step.prompt
    if step.message is not None:
        yield from _message_texts(step.message.model_dump(exclude_none=True), "message")


def _message_texts(node: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in {"id", "type", "steps"}:
                yield from _message_texts(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _message_texts(value, f"{path}[{i}]")


class _Linter:
    def __init__(
        self,
        templates: Mapping[str, TemplateDef],
        sources: Mapping[str, str],
        actions: Mapping[str, frozenset[str]],
        globals_: frozenset[str],
    ) -> None:
        self.templates = templates
        self.sources = sources
        self.actions = actions
        self.globals = globals_
        self.errors: list[LintError] = []

    def error(self, template: str | None, step: str | None, field: str | None, message: str) -> None:
        self.errors.append(LintError(self.sources.get(template or "", template or "?"), template, step, field, message))

    def provides(self, step: Step) -> frozenset[str]:
        if isinstance(step.action, HttpAction):
            return frozenset(step.action.provides)
        if isinstance(step.action, str):
            return self.actions.get(step.action, frozenset())
        return frozenset()

    def run(self) -> list[LintError]:
        for name, template in self.templates.items():
            self.template(name, template)
        self.keywords()
        return sorted(set(self.errors), key=LintError.sort_key)

    def template(self, name: str, t: TemplateDef) -> None:
        steps = t.steps
        initial = steps[INITIAL]
        if initial.prompt is not None or initial.message is not None:
            self.error(
                name, INITIAL, "prompt", "initial must not have its own prompt or message: the entry message is it"
            )
        for field, text in _message_texts(t.entry_message(), "menu_structure"):
            self.placeholders(name, None, field, text, self.globals)
        edges: dict[str, set[str]] = {s: set() for s in steps}
        for step_name, step in steps.items():
            self.step(name, t, step_name, step)
            for field, target in targets(t, step_name):
                if target in steps:
                    edges[step_name].add(target)
                elif resolve_template(target, self.templates) is None:
                    self.error(name, step_name, field, f"{field} '{target}' is not a step of {name} nor a template")
        reachable = self.reachable(edges)
        for step_name in steps:
            if step_name not in reachable:
                self.error(name, step_name, None, "unreachable from initial: no option or next_step leads here")
        self.dataflow(name, t, edges, reachable)

    def step(self, name: str, t: TemplateDef, step_name: str, step: Step) -> None:
        options = [o.id for o in t.step_options(step_name)]
        if isinstance(step.action, str) and step.action not in self.actions:
            known = ", ".join(sorted(self.actions)) or "none"
            self.error(name, step_name, "action", f"action '{step.action}' is not registered (known: {known})")
        if step.end_conversation:
            for field, present in (
                ("next_step", step.next_step),
                ("next_steps", step.next_steps),
                ("validation", step.validation),
            ):
                if present:
                    self.error(name, step_name, field, f"{field} on a step that ends the conversation")
            if options:
                self.error(
                    name, step_name, "message", "options on a step that ends the conversation: taps would go nowhere"
                )
            return
        if not step.next_step and not step.next_steps:
            self.error(name, step_name, "next_step", "dead end: the step neither moves on nor ends the conversation")
            return
        next_steps = step.next_steps or {}
        if options:
            if step.validation is not None:
                self.error(name, step_name, "validation", "validation on a step that offers options")
            for key in next_steps:
                if key not in options:
                    self.error(name, step_name, f"next_steps.{key}", f"next_steps.{key}: '{key}' is not an option id")
            if not step.next_step:
                for option in options:
                    if option not in next_steps:
                        self.error(name, step_name, "next_steps", f"next_steps: option '{option}' has no transition")
            return
        if next_steps:
            yes_no = step.validation is not None and step.validation.type == "yes_no"
            if not yes_no:
                self.error(name, step_name, "next_steps", "next_steps on an input step needs validation yes_no")
                return
            for key in next_steps:
                if key not in {"yes", "no"}:
                    self.error(name, step_name, f"next_steps.{key}", f"next_steps.{key}: only yes and no are answers")
            if not step.next_step and {"yes", "no"} - set(next_steps):
                self.error(name, step_name, "next_steps", "next_steps: both yes and no need a transition")

    @staticmethod
    def reachable(edges: Mapping[str, set[str]]) -> set[str]:
        seen, todo = {INITIAL}, [INITIAL]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def dataflow(self, name: str, t: TemplateDef, edges: Mapping[str, set[str]], reachable: set[str]) -> None:
        """Must-set analysis: a placeholder must be set on every path into its step."""
        steps = t.steps
        universe = (
            self.globals
            | frozenset(k for s_name, s in steps.items() for k in (s.key(s_name), s.key(s_name) + "_title"))
            | frozenset(k for s in steps.values() for k in self.provides(s))
        )
        into: dict[str, frozenset[str]] = {s: (self.globals if s == INITIAL else universe) for s in reachable}

        def out(step_name: str) -> frozenset[str]:
            step = steps[step_name]
            key = step.key(step_name)
            answered = {key, key + "_title"} if t.step_options(step_name) else {key}
            return into[step_name] | self.provides(step) | answered

        changed = True
        while changed:
            changed = False
            for step_name in reachable:
                if step_name == INITIAL:
                    continue
                preds = [p for p in reachable if step_name in edges[p]]
                new = frozenset.intersection(*(out(p) for p in preds)) if preds else self.globals
                if new != into[step_name]:
                    into[step_name] = new
                    changed = True
        for step_name in sorted(reachable):
            step = steps[step_name]
            available = into[step_name] | self.provides(step)
            for field, text in _texts(step):
                self.placeholders(name, step_name, field, text, available)
            if step.error:
                self.placeholders(name, step_name, "error", step.error, into[step_name])

    def placeholders(self, name: str, step: str | None, field: str, text: str, available: frozenset[str]) -> None:
        try:
            used = placeholders(text)
        except PlaceholderError as exc:
            self.error(name, step, field, f"{field}: {exc}")
            return
        for placeholder in used:
            if placeholder not in available:
                self.error(
                    name, step, field, f"{field}: placeholder {{{placeholder}}} is not set on every path into this step"
                )

    def keywords(self) -> None:
        owners: dict[str, list[str]] = {}
        for name, t in self.templates.items():
            seen: set[str] = set()
            for keyword in t.trigger_keywords:
                norm = normalize(keyword)
                if not norm:
                    self.error(
                        name, None, "trigger_keywords", f"trigger_keywords: '{keyword}' has no letters or digits"
                    )
                    continue
                if norm in seen:
                    self.error(name, None, "trigger_keywords", f"trigger_keywords: '{norm}' is listed twice")
                    continue
                seen.add(norm)
                if t.is_active:
                    owners.setdefault(norm, []).append(name)
        for keyword, names in owners.items():
            for name in names:
                for other in names:
                    if other != name:
                        self.error(
                            name,
                            None,
                            "trigger_keywords",
                            f"trigger_keywords: '{keyword}' is also a keyword of {other} ({self.sources.get(other, other)})",
                        )


def lint(
    templates: Mapping[str, TemplateDef],
    sources: Mapping[str, str],
    actions: Mapping[str, frozenset[str]] | None = None,
    globals_: frozenset[str] = frozenset(),
) -> list[LintError]:
    """Every graph-rule violation in ``templates`` (validated already), sorted."""
    return _Linter(templates, sources, actions or {}, globals_).run()
