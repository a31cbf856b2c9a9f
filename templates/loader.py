"""Read flow files: YAML → schema (``schema.py``) → graph lint (``lint.py``).

Every problem becomes one ``LintError`` line naming the file, the step and the field; a
template with any error is left out of the result, so it never loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from templates.lint import ALIAS_SUFFIX, LintError, lint
from templates.schema import TemplateDef

_UNION_TAGS = {"button", "list", "text", "str", "HttpAction"}
_UNION_FIELDS = {"menu_structure", "message", "action"}
_LIMIT_TYPES = {"string_too_long", "too_long"}


@dataclass
class LoadResult:
    templates: dict[str, TemplateDef] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    errors: list[LintError] = field(default_factory=list)


def _dotted(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_errors(exc: ValidationError, file: str, name: str | None) -> list[LintError]:
    errors = []
    for err in exc.errors():
        # Drop the discriminator tags pydantic inserts for tagged unions ('button', 'list', ...).
        raw = list(err["loc"])
        loc = [p for i, p in enumerate(raw) if not (i > 0 and raw[i - 1] in _UNION_FIELDS and p in _UNION_TAGS)]
        loc = [p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "literal[")))]
        step = None
        if len(loc) >= 3 and loc[0] == "menu_structure" and loc[1] == "steps":
            step, loc = str(loc[2]), loc[3:]
        path = _dotted(loc) or "(template)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] in _LIMIT_TYPES:
            message += " (WhatsApp limit)"
        if err["type"] == "extra_forbidden":
            message = "unknown field (a typo?)"
        errors.append(LintError(file, name, step, path, f"{path}: {message}"))
    return errors


def parse_definition(data: Any, file: str) -> tuple[TemplateDef | None, list[LintError]]:
    """Validate one template given as data (from YAML or an API body)."""
    name = data.get("template_name") if isinstance(data, dict) else None
    name = name if isinstance(name, str) else None
    if not isinstance(data, dict):
        return None, [LintError(file, None, None, None, "a flow file must hold one mapping (a template)")]
    try:
        return TemplateDef.model_validate(data), []
    except ValidationError as exc:
        return None, _pydantic_errors(exc, file, name)


def load_file(path: Path) -> tuple[TemplateDef | None, list[LintError]]:
    definition, errors, _ = _load_file(path)
    return definition, errors


def _load_file(path: Path) -> tuple[TemplateDef | None, list[LintError], Any]:
    file = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [LintError(file, None, None, None, f"YAML syntax error at {where}{problem}")], None
    except (OSError, UnicodeDecodeError) as exc:
        return None, [LintError(file, None, None, None, f"cannot read file: {exc}")], None
    definition, errors = parse_definition(data, file)
    if definition is not None and definition.template_name != path.stem:
        errors.append(
            LintError(
                file,
                definition.template_name,
                None,
                "template_name",
                f"template_name: '{definition.template_name}' must match the file name '{path.stem}'",
            )
        )
        return None, errors, data
    return definition, errors, data


def _raw_target_errors(data: Any, file: str, names: set[str]) -> list[LintError]:
    """Bad targets in a template that failed the schema, so one run reports them too."""
    try:
        name = str(data["template_name"])
        steps = data["menu_structure"]["steps"]
        assert isinstance(steps, dict)
    except (TypeError, KeyError, AssertionError):
        return []
    errors = []
    for step_name, step in steps.items():
        if not isinstance(step, dict):
            continue
        pairs = [("next_step", step.get("next_step"))]
        if isinstance(step.get("next_steps"), dict):
            pairs += [(f"next_steps.{k}", v) for k, v in step["next_steps"].items()]
        for field_name, target in pairs:
            if not isinstance(target, str) or target in steps:
                continue
            if target in names or (target.endswith(ALIAS_SUFFIX) and target[: -len(ALIAS_SUFFIX)] in names):
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
    return lint(defs, sources, actions, globals_)


def load_directory(
    path: Path,
    actions: Mapping[str, frozenset[str]] | None = None,
    globals_: frozenset[str] = frozenset(),
) -> LoadResult:
    """Every ``*.yaml``/``*.yml`` in ``path``, checked alone and then together."""
    result = LoadResult()
    files = sorted(p for p in Path(path).iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())
    failed: list[tuple[Any, str]] = []
    for file in files:
        definition, errors, data = _load_file(file)
        result.errors.extend(errors)
        if definition is None:
            failed.append((data, str(file)))
            continue
        name = definition.template_name
        if name in result.templates:
            result.errors.append(
                LintError(
                    str(file),
                    name,
                    None,
                    "template_name",
                    f"template_name: '{name}' is also defined in {result.sources[name]}",
                )
            )
            continue
        result.templates[name] = definition
        result.sources[name] = file
    names = set(result.templates) | {
        str(d["template_name"]) for d, _ in failed if isinstance(d, dict) and "template_name" in d
    }
    for data, file_name in failed:
        result.errors.extend(_raw_target_errors(data, file_name, names))
    graph_errors = lint(result.templates, {n: str(p) for n, p in result.sources.items()}, actions, globals_)
    result.errors.extend(graph_errors)
    for bad in {e.template for e in graph_errors}:
        result.templates.pop(bad or "", None)
        result.sources.pop(bad or "", None)
    result.errors.sort(key=LintError.sort_key)
    return result
