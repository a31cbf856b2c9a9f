"""Graph rules over a set of validated templates: nothing that could strand a customer loads.

Mirrors the step engine (``conversation/engine.py``, the step machine) without importing it:

- a template starts by sending its entry message; the customer is then at ``initial`` with
  only the globals in the context;
- a step with options (``initial``: the entry message's) is a choice step, else an input
  step; a choice stores ``key`` and ``key_title``, an input stores ``key``;
- after an answer: choice → ``next_steps[option]`` else ``next_step``; input with validation
  ``yes_no`` → ``next_steps[yes|no]`` else ``next_step``; other input → ``next_step``;
- a target is a step of the same template, else an active template, else ``<name>_flow``
  (alias of template ``<name>``); a template target starts that template afresh;
- entering a step runs its action, sends its prompt and/or message, then ends the
  conversation if ``end_conversation``, or hands the customer to a person if ``handoff``
  (a leaf, like an end).

Action names and the keys they set come in as a parameter: this package never imports
``conversation``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from templates.handoff_step import handoff_errors
from templates.normalize import normalize
from templates.placeholders import PlaceholderError, placeholders
from templates.schema import ALIAS_SUFFIX, INITIAL, ORDER_CONTEXT, HttpAction, Step, TemplateDef

YES_NO = ("yes", "no")


@dataclass(frozen=True)
class LintError:
    """One problem, printed as one line: ``{file}: step {step}: {message}``."""

    file: str
    template: str | None
    step: str | None
    field: str | None
    message: str  # starts with the field when there is one

    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.file, self.step or "", self.field or "", self.message)

    def __str__(self) -> str:
        where = f"step {self.step}: " if self.step is not None else ""
        return " ".join(f"{self.file}: {where}{self.message}".splitlines())


def message_texts(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(field, text) of every string the engine renders in a dumped message (not ids, types)."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in {"id", "type", "steps"}:
                yield from message_texts(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from message_texts(value, f"{path}[{i}]")


def _step_texts(step: Step) -> Iterator[tuple[str, str]]:
    """(field, text) shown on entering the step, on an invalid answer to it, or as its reminder."""
    if step.prompt:
        yield "prompt", step.prompt
    if step.message is not None:
        yield from message_texts(step.message.model_dump(exclude_none=True), "message")
    if step.error:
        yield "error", step.error
    if step.reminder:
        yield "reminder", step.reminder
    for i, value in enumerate(step.reminder_template.parameters if step.reminder_template else ()):
        yield f"reminder_template.parameters[{i}]", value


def transitions(template: TemplateDef, name: str) -> list[tuple[str, str]]:
    """(field, target) pairs the engine can actually take after an answer to step ``name``."""
    step = template.steps[name]
    if step.end_conversation or step.handoff:
        return []
    branches = step.next_steps or {}
    if options := template.step_options(name):
        answers = [o.id for o in options]
    elif step.validation is not None and step.validation.type == "yes_no":
        answers = list(YES_NO)
    else:
        answers = []
    out = [(f"next_steps.{a}", branches[a]) for a in answers if a in branches]
    if step.next_step and (not answers or any(a not in branches for a in answers)):
        out.append(("next_step", step.next_step))
    return out


class _Linter:
    def __init__(
        self,
        templates: Mapping[str, TemplateDef],
        sources: Mapping[str, str],
        actions: Mapping[str, frozenset[str]],
        globals_: frozenset[str],
        also_known: Collection[str],
    ) -> None:
        self.templates = templates
        self.sources = sources
        self.actions = actions
        self.globals = globals_
        self.also_known = set(also_known)
        self.errors: list[LintError] = []

    def error(self, template: str, step: str | None, field: str | None, message: str) -> None:
        self.errors.append(LintError(self.sources.get(template, template), template, step, field, message))

    def provides(self, step: Step) -> frozenset[str]:
        if isinstance(step.action, HttpAction):
            return frozenset(step.action.provides)
        return self.actions.get(step.action, frozenset()) if step.action else frozenset()

    def run(self) -> list[LintError]:
        for name, template in self.templates.items():
            self.template(name, template)
        self.keywords()
        return sorted(set(self.errors), key=LintError.sort_key)

    # --- one template ----------------------------------------------------------------

    def template(self, name: str, t: TemplateDef) -> None:
        initial = t.steps[INITIAL]
        for field, present in (("prompt", initial.prompt), ("message", initial.message)):
            if present is not None:
                self.error(name, INITIAL, field, f"{field}: not allowed on initial (the entry message is its message)")
        if initial.action is not None:
            self.error(
                name, INITIAL, "action", "action: does not run on initial (a template starts with its entry message)"
            )
        if initial.end_conversation:
            self.error(
                name, INITIAL, "end_conversation", "end_conversation: not allowed on initial; end on a later step"
            )
        start = self.start_context(t)
        only = ", ".join(sorted(start)) or "none"
        for field, text in message_texts(t.entry_message(), "menu_structure"):
            for p in self.used(name, None, field, text):
                if p not in start:
                    message = (
                        f"{field}: placeholder {{{p}}} is not available in the entry message (only globals: {only})"
                    )
                    self.error(name, None, field, message)
        for step_name in t.steps:
            self.step(name, t, step_name)
        edges, blind = self.edges(t)
        reachable = {INITIAL}
        todo = [INITIAL]
        while todo:
            for target in sorted(edges[todo.pop()] - reachable):
                reachable.add(target)
                todo.append(target)
        for step_name in t.steps:
            if step_name not in reachable and not blind:
                self.error(name, step_name, None, "unreachable from initial")
        self.dataflow(name, t, edges, reachable)

    def start_context(self, t: TemplateDef) -> frozenset[str]:
        """What is set before the entry message: the globals, and the cart of an order flow."""
        return self.globals | ORDER_CONTEXT if t.trigger == "order" else self.globals

    def edges(self, t: TemplateDef) -> tuple[dict[str, set[str]], bool]:
        """Step → steps it can lead to; True when a broken target hides where it leads.

        A target that names nothing but looks like a step's name ('confirmaton') is taken as
        that step, so one typo is reported once, not again as every step behind it.
        """
        edges: dict[str, set[str]] = {s: set() for s in t.steps}
        blind = False
        for s in t.steps:
            for _, target in transitions(t, s):
                if target not in t.steps and self.template_of(target) is None:
                    guess = difflib.get_close_matches(target, list(t.steps), n=1, cutoff=0.8)
                    target, blind = (guess[0], blind) if guess else (target, True)
                if target in t.steps:
                    edges[s].add(target)
        return edges, blind

    def template_of(self, target: str) -> str | None:
        """The template a target names (directly or as ``<name>_flow``), if it exists."""
        for candidate in (target, target.removesuffix(ALIAS_SUFFIX)):
            if candidate in self.templates or candidate in self.also_known:
                return candidate
        return None

    def target(self, name: str, t: TemplateDef, step_name: str, field: str, target: str) -> None:
        if target in t.steps:
            return
        other = self.template_of(target)
        if other is None:
            message = f"{field} '{target}' is not a step of {name} nor a template{self.did_you_mean(t, target)}"
            self.error(name, step_name, field, message)
        elif other in self.templates and not self.templates[other].is_active:
            message = f"{field} '{target}': template {other} is not active, switching to it would drop the customer"
            self.error(name, step_name, field, message)

    def did_you_mean(self, t: TemplateDef, target: str) -> str:
        """``; did you mean 'confirmation'?``: the closest step of ``t`` or template, if any is close."""
        candidates = [*t.steps, *self.templates, *self.also_known]
        guess = difflib.get_close_matches(target, candidates, n=1, cutoff=0.7)
        return f"; did you mean '{guess[0]}'?" if guess else ""

    def step(self, name: str, t: TemplateDef, step_name: str) -> None:
        step = t.steps[step_name]
        if isinstance(step.action, str) and step.action not in self.actions:
            known = ", ".join(sorted(self.actions))
            hint = f"registered: {known}" if known else "no actions are registered"
            self.error(name, step_name, "action", f"action: unknown action '{step.action}' ({hint})")
        branches = step.next_steps or {}
        if step.next_step:
            self.target(name, t, step_name, "next_step", step.next_step)
        for key, target in branches.items():
            self.target(name, t, step_name, f"next_steps.{key}", target)
        options = [o.id for o in t.step_options(step_name)]
        if step.handoff:
            for field, message in handoff_errors(step_name, step, options):
                self.error(name, step_name, field, message)
            return
        if step.end_conversation:
            for field, present in (
                ("next_step", step.next_step),
                ("next_steps", branches),
                ("validation", step.validation),
            ):
                if present:
                    self.error(name, step_name, field, f"{field}: not allowed on a step that ends the conversation")
            if options:
                message = "message: offers options on a step that ends the conversation; nobody could answer them"
                self.error(name, step_name, "message", message)
            if step.prompt is None and step.message is None:
                message = "prompt missing: the conversation ends here without a word to the customer"
                self.error(name, step_name, "prompt", message)
            return
        if step_name != INITIAL and step.prompt is None and step.message is None:
            message = "prompt missing: the step waits for an answer but sends no prompt or message"
            self.error(name, step_name, "prompt", message)
        if not step.next_step and not branches:
            message = "next_step missing: the step neither moves on (next_step, next_steps) nor ends (end_conversation)"
            self.error(name, step_name, "next_step", message)
            return
        if options:
            self.choice(name, step_name, step, options)
        elif branches:
            self.input_branches(name, step_name, step)

    def choice(self, name: str, step_name: str, step: Step, options: list[str]) -> None:
        branches = step.next_steps or {}
        if step.validation is not None:
            message = "validation: not allowed on a choice step (it is answered with buttons or list rows)"
            self.error(name, step_name, "validation", message)
        for key in branches:
            if key not in options:
                message = f"next_steps.{key}: '{key}' is not an option of this step (options: {', '.join(options)})"
                self.error(name, step_name, f"next_steps.{key}", message)
        if not step.next_step:
            for option in options:
                if option not in branches:
                    message = f"next_steps: option '{option}' has no transition (add it, or give next_step)"
                    self.error(name, step_name, "next_steps", message)

    def input_branches(self, name: str, step_name: str, step: Step) -> None:
        branches = step.next_steps or {}
        if step.validation is None or step.validation.type != "yes_no":
            message = "next_steps: only choice steps and validation yes_no branch; use next_step"
            self.error(name, step_name, "next_steps", message)
            return
        for key in branches:
            if key not in YES_NO:
                message = f"next_steps.{key}: '{key}' is not an answer of validation yes_no (yes, no)"
                self.error(name, step_name, f"next_steps.{key}", message)
        if not step.next_step:
            for answer in YES_NO:
                if answer not in branches:
                    message = f"next_steps: answer '{answer}' has no transition (add it, or give next_step)"
                    self.error(name, step_name, "next_steps", message)

    # --- placeholders ----------------------------------------------------------------

    def used(self, name: str, step: str | None, field: str, text: str) -> list[str]:
        """Placeholders in ``text``; an invalid one is reported and nothing is returned."""
        try:
            return list(dict.fromkeys(placeholders(text)))
        except PlaceholderError as exc:
            self.error(name, step, field, f"{field}: {exc}; write {{{{ and }}}} for literal braces")
            return []

    def dataflow(self, name: str, t: TemplateDef, edges: Mapping[str, set[str]], reachable: set[str]) -> None:
        """Must-set analysis: a placeholder must be set on every path into the step using it."""
        steps = t.steps
        preds = {s: sorted(p for p in reachable if s in edges[p]) for s in reachable}
        into: dict[str, frozenset[str] | None] = {s: None for s in reachable}  # None: no path seen yet
        into[INITIAL] = self.start_context(t)

        def out(s: str) -> frozenset[str] | None:
            known = into[s]
            if known is None:
                return None
            key = steps[s].key(s)
            answered = {key, f"{key}_title"} if t.step_options(s) else {key}
            return known | (self.provides(steps[s]) if s != INITIAL else frozenset()) | answered

        changed = True
        while changed:
            changed = False
            for s in sorted(reachable - {INITIAL}):
                outs = [o for o in map(out, preds[s]) if o is not None]
                new = frozenset.intersection(*outs) if outs else None
                if new is not None and new != into[s]:
                    into[s], changed = new, True
        ever = self.start_context(t) | {k for s in steps for k in (steps[s].key(s), f"{steps[s].key(s)}_title")}
        ever |= {k for st in steps.values() for k in self.provides(st)}
        for s, step in sorted(steps.items()):
            known = into.get(s)
            runs = self.provides(step) if s != INITIAL else frozenset()
            available = None if known is None else known | self.globals | runs
            for field, text in _step_texts(step):
                for p in self.used(name, s, field, text):
                    if available is None or p in available:
                        continue  # an unreachable step is reported as such
                    if p not in ever:
                        why = "is never set (no step stores it, no action provides it, not a global)"
                    else:
                        origin = next((q for q in preds[s] if p not in (out(q) or ())), None)
                        why = f"is not set on every path into {s}"
                        why += f" (not set when coming from step {origin})" if origin else ""
                    self.error(name, s, field, f"{field}: placeholder {{{p}}} {why}")

    # --- keywords --------------------------------------------------------------------

    def keywords(self) -> None:
        owners: dict[str, dict[str, str]] = {}  # normalized keyword → template → keyword as written
        for name, t in self.templates.items():
            seen: dict[str, str] = {}
            for keyword in t.trigger_keywords:
                norm = normalize(keyword)
                if not norm:
                    message = f"trigger_keywords: '{keyword}' has no letters or digits, it can never match"
                    self.error(name, None, "trigger_keywords", message)
                elif norm in seen:
                    message = f"trigger_keywords: '{keyword}' duplicates '{seen[norm]}' (keywords compare normalized)"
                    self.error(name, None, "trigger_keywords", message)
                else:
                    seen[norm] = keyword
                    if t.is_active:
                        owners.setdefault(norm, {})[name] = keyword
        for names in owners.values():
            for name, keyword in names.items():
                for other in names:
                    if other != name:
                        source = self.sources.get(other, other)
                        message = f"trigger_keywords: '{keyword}' is also a keyword of {other} ({source})"
                        self.error(name, None, "trigger_keywords", message)


def lint_definitions(
    defs: Mapping[str, TemplateDef],
    sources: Mapping[str, str],
    actions: Mapping[str, frozenset[str]] | None = None,
    globals_: frozenset[str] = frozenset(),
    *,
    also_known: Collection[str] = (),
) -> list[LintError]:
    """Every graph-rule violation in ``defs`` (already schema-valid), sorted.

    ``sources`` names where each template came from (a file, "template x"); ``actions`` maps
    registered Python action names to the context keys they set (default: none registered);
    ``globals_`` are placeholders always set. ``also_known`` names templates that exist but are
    not linted here (e.g. a file that failed the schema): targets naming them are accepted.
    """
    return _Linter(defs, sources, actions or {}, frozenset(globals_), also_known).run()
