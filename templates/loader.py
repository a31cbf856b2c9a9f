"""Read flow files: YAML → schema (``schema.py``) → graph lint (``lint.py``).

Every problem becomes one ``LintError`` line naming the file, the step and the field; a
template with any error is left out of the result, so it never loads.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from templates import lint, schema, translation_checks
from templates.lint import LintError
from templates.message_templates import CATALOGUE_FILE
from templates.schema import ALIAS_SUFFIX, NAME_PATTERN, TemplateDef

# Tags pydantic puts in a location for the branch of a union it tried.
_MESSAGE_TAGS = {"button", "list", "text"}
_ACTION_TAGS = {"str", "constrained-str", "HttpAction"}
# What each WhatsApp limit (Meta's documented maximum lengths) applies to, by the end of the field path.
_TEXT_LIMITS = {
    ("reply", "title"): "a reply button title",
    ("reply", "id"): "a reply button id",
    ("action", "button"): "a list's button text",
    ("sections", "title"): "a list section title",
    ("rows", "id"): "a list row id",
    ("rows", "title"): "a list row title",
    ("rows", "description"): "a list row description",
    ("header", "text"): "a header",
    ("footer", "text"): "a footer",
    ("body", "text"): "a message body",
    ("prompt",): "a text message",
    ("error",): "a text message",
}
_LIST_LIMITS = {
    ("action", "buttons"): "reply buttons per message",
    ("action", "sections"): "sections per list",
    ("sections", "rows"): "rows per list section",
}
# Every key the flow format knows, to suggest the one an unknown key misspells.
_KNOWN_KEYS = sorted(
    {
        name
        for model in vars(schema).values()
        if isinstance(model, type) and issubclass(model, BaseModel)
        for name in model.model_fields
    }
)

# The language of a flow that does not name its own: parley's reference language.
DEFAULT_LANGUAGE = "en"

_TOP_FIELDS = {"template_type", "menu_structure.steps", "menu_structure.type"}


@dataclass
class LoadResult:
    templates: dict[str, TemplateDef] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    errors: list[LintError] = field(default_factory=list)


def _dotted(parts: list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _location(raw: tuple[str | int, ...]) -> tuple[str | None, list[str | int], str | None]:
    """(step, field parts, union tag) of a pydantic location, discriminator tags removed."""
    loc = list(raw)
    if len(loc) >= 2 and loc[0] == "menu_structure" and loc[1] in _MESSAGE_TAGS:
        del loc[1]
    step = None
    if len(loc) >= 3 and loc[:2] == ["menu_structure", "steps"]:
        step, loc = str(loc[2]), loc[3:]
    tag = None
    if step is not None and len(loc) >= 2:
        if loc[0] == "message" and loc[1] in _MESSAGE_TAGS:
            del loc[1]
        elif loc[0] == "action" and loc[1] in _ACTION_TAGS:
            tag = str(loc.pop(1))
    return step, loc, tag


def _readable(err: ErrorDetails, parts: list[str | int]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    names = tuple(p for p in parts if isinstance(p, str))
    given = err.get("input")
    if kind == "extra_forbidden":
        guess = difflib.get_close_matches(names[-1] if names else "", _KNOWN_KEYS, n=1, cutoff=0.75)
        return f"unknown field (did you mean {guess[0]}?)" if guess else "unknown field (a typo?)"
    if kind == "missing":
        return "is required"
    if kind == "string_too_long":
        label = _TEXT_LIMITS.get(names[-2:]) or _TEXT_LIMITS.get(names[-1:])
        if label == "a message body":
            interactive = ctx.get("max_length") == schema.MAX_INTERACTIVE_BODY
            label = "an interactive message body" if interactive else "a text message"
        limit = f" (WhatsApp limit for {label})" if label else ""
        got = f", got {len(given)}" if isinstance(given, str) else ""
        return f"at most {ctx.get('max_length')} characters{limit}{got}"
    if kind == "too_long":
        label = _LIST_LIMITS.get(names[-2:])
        what = f"{label} (WhatsApp limit)" if label else "items"
        got = f", got {len(given)}" if isinstance(given, list) else ""
        return f"at most {ctx.get('max_length')} {what}{got}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == NAME_PATTERN:
            return f"{given!r} must be lower-case letters, digits and _ only"
        return f"{given!r} must match {ctx.get('pattern')}"
    message = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    if message.startswith("a list holds at most"):
        message += " (WhatsApp limit)"
    return message


def _pydantic_errors(exc: ValidationError, file: str, name: str | None) -> list[LintError]:
    out: list[LintError] = []
    for err in exc.errors():
        step, parts, tag = _location(err["loc"])
        if tag is not None:
            # `action` is a name or an http mapping: report only the branch the input was meant for.
            given = err.get("input")
            if len(parts) > 1 or isinstance(given, dict):
                keep = tag == "HttpAction"
            elif isinstance(given, str):
                keep = tag != "HttpAction"
            else:  # neither: one error, not one per branch
                if tag != "HttpAction":
                    path = _dotted(parts)
                    message = f"{path}: must be an action name or a mapping {{http: url, provides: [...]}}"
                    out.append(LintError(file, name, step, path, message))
                continue
            if not keep:
                continue
        message = _readable(err, parts)
        if not parts:  # a whole-template rule; its message starts with the field it is about
            first = message.split(" ", 1)[0]
            parts = [first] if first.replace(".", "_").isidentifier() and first in _TOP_FIELDS else []
            message = message.split(" ", 1)[1] if parts else message
        path = _dotted(parts) or "(template)"
        out.append(LintError(file, name, step, path, f"{path}: {message}"))
    return sorted(set(out), key=LintError.sort_key)


def parse_definition(
    data: Any, file: str, default_language: str = DEFAULT_LANGUAGE
) -> tuple[TemplateDef | None, list[LintError]]:
    """Validate one template given as data (from YAML or an API body), its translations too."""
    if not isinstance(data, dict):
        return None, [LintError(file, None, None, None, "a flow file must hold one mapping (a template)")]
    name = data.get("template_name")
    try:
        definition = TemplateDef.model_validate(data)
    except ValidationError as exc:
        return None, _pydantic_errors(exc, file, name if isinstance(name, str) else None)
    errors = translation_checks.flow_errors(definition, file, default_language)
    return (None, errors) if errors else (definition, [])


class _FlowYaml(yaml.SafeLoader):
    """``yaml.safe_load`` with two fixes for flow files.

    Only ``true``/``false`` are booleans (YAML 1.2): ``yes``/``no``/``on``/``off`` stay text,
    as option ids and yes_no branches need. A key given twice is an error instead of the
    second silently replacing the first (two steps with one name, say).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    problem = f"duplicate key '{key_node.value}' (the second would replace the first)"
                    raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_BOOL = "tag:yaml.org,2002:bool"
_FlowYaml.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_FlowYaml.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _read(path: Path) -> tuple[Any, list[LintError]]:
    file = str(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_FlowYaml), []  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [LintError(file, None, None, None, f"YAML syntax error{where}: {problem}")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [LintError(file, None, None, None, f"cannot read file: {exc}")]


def _load(path: Path, default_language: str = DEFAULT_LANGUAGE) -> tuple[TemplateDef | None, list[LintError], Any]:
    data, errors = _read(path)
    if errors:
        return None, errors, None
    definition, errors = parse_definition(data, str(path), default_language)
    name = data.get("template_name") if isinstance(data, dict) else None
    if isinstance(name, str) and name != path.stem:
        message = f"template_name: '{name}' must match the file name '{path.stem}'"
        errors.append(LintError(str(path), name, None, "template_name", message))
    return (definition if not errors else None), errors, data


def load_file(path: Path) -> tuple[TemplateDef | None, list[LintError]]:
    """One flow file checked on its own (YAML, schema, file name); graph rules need the others."""
    definition, errors, _ = _load(Path(path))
    return definition, errors


def raw_target_errors(data: Any, file: str, names: set[str]) -> list[LintError]:
    """Bad ``next_step(s)`` targets in raw flow ``data`` that failed the schema, so one run
    reports them too (the loader and the admin API both do). ``names``: the known templates."""
    if not isinstance(data, dict) or not isinstance(data.get("menu_structure"), dict):
        return []
    steps = data["menu_structure"].get("steps")
    if not isinstance(steps, dict):
        return []
    name = str(data.get("template_name"))
    errors = []
    for step_name, step in steps.items():
        if not isinstance(step, dict):
            continue
        pairs = [("next_step", step.get("next_step"))]
        if isinstance(step.get("next_steps"), dict):
            pairs += [(f"next_steps.{k}", v) for k, v in step["next_steps"].items()]
        for field_name, target in pairs:
            if not isinstance(target, str) or target in steps or target in names:
                continue
            if target.endswith(ALIAS_SUFFIX) and target[: -len(ALIAS_SUFFIX)] in names:
                continue
            message = f"{field_name} '{target}' is not a step of {name} nor a template"
            errors.append(LintError(file, name, str(step_name), field_name, message))
    return errors


def lint_definitions(
    defs: Mapping[str, TemplateDef],
    sources: Mapping[str, str],
    actions: Mapping[str, frozenset[str]] | None,
    globals_: frozenset[str],
) -> list[LintError]:
    """Graph rules over templates that passed the schema (e.g. from the database or the API)."""
    return lint.lint_definitions(defs, sources, actions, globals_)


def load_directory(
    path: Path,
    actions: Mapping[str, frozenset[str]] | None = None,
    globals_: frozenset[str] = frozenset(),
    default_language: str = DEFAULT_LANGUAGE,
) -> LoadResult:
    """Every ``*.yaml``/``*.yml`` in ``path`` (sorted), checked alone and then together.

    ``default_language``: the language of a flow that names none (its translations are
    checked against it)."""
    result = LoadResult()
    # The message template catalogue shares the directory but is no flow (message_templates.py).
    files = sorted(
        p for p in Path(path).iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file() and p.name != CATALOGUE_FILE
    )
    failed: list[tuple[Any, str]] = []
    seen: dict[str, Path] = {}
    duplicates: set[str] = set()
    for file in files:
        definition, errors, data = _load(file, default_language)
        result.errors.extend(errors)
        name = data.get("template_name") if isinstance(data, dict) else None
        if isinstance(name, str):
            if name in seen:
                duplicates.add(name)
                message = f"template_name: '{name}' is also defined in {seen[name]}"
                result.errors.append(LintError(str(file), name, None, "template_name", message))
            else:
                seen[name] = file
        if definition is None:
            failed.append((data, str(file)))
        elif name not in result.templates and name not in duplicates:
            result.templates[definition.template_name] = definition
            result.sources[definition.template_name] = file
    for name in duplicates:
        result.templates.pop(name, None)
        result.sources.pop(name, None)
    keyword_errors = translation_checks.keyword_errors(
        {
            n: translation_checks.languages_of(t, str(result.sources[n]), default_language)
            for n, t in result.templates.items()
        }
    )
    result.errors.extend(keyword_errors)
    for error in keyword_errors:
        result.templates.pop(error.template or "", None)
        result.sources.pop(error.template or "", None)
    broken = set(seen) - set(result.templates)
    for data, file_name in failed:
        result.errors.extend(raw_target_errors(data, file_name, set(seen)))
    graph_errors = lint.lint_definitions(
        result.templates,
        {n: str(p) for n, p in result.sources.items()},
        actions,
        globals_,
        also_known=broken,
    )
    result.errors.extend(graph_errors)
    for error in graph_errors:
        if error.template is not None:
            result.templates.pop(error.template, None)
            result.sources.pop(error.template, None)
    result.errors = sorted(set(result.errors), key=LintError.sort_key)
    return result
