"""Read the deployment files the way Docker does, without Docker.

Docker does not run where the tests run, so ``docker compose config`` and ``docker build``
are replaced by small, strict readers of the parts parley uses: compose's ``${...}``
interpolation, the ``.env`` format, ``.dockerignore`` matching and Dockerfile
instructions. Each follows the Compose / Dockerfile reference for the syntax it accepts
and raises on anything else, so a construct these readers do not understand fails a
test instead of passing unchecked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MissingVariable(ValueError):
    """A required ``${VAR:?message}`` had no value: compose would refuse to start."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"required variable {name} is missing a value: {message}")


# --- compose interpolation ---------------------------------------------------------------
def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``, ``${VAR:?e}``,
    ``${VAR?e}``, ``${VAR:+r}``, ``${VAR+r}`` as Compose does; defaults may nest and are
    only evaluated when used."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            out.append(_braced(text[i + 2 : end], env))
            i = end + 1
        elif (match := _NAME.match(text, i + 1)) is not None:
            out.append(env.get(match.group(), ""))
            i = match.end()
        else:
            raise ValueError(f"invalid interpolation format in {text!r} at {i}")
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise ValueError(f"unclosed ${{ in {text!r}")


def _braced(inner: str, env: Mapping[str, str]) -> str:
    match = _NAME.match(inner)
    if match is None:
        raise ValueError(f"invalid interpolation ${{{inner}}}")
    name, rest = match.group(), inner[match.end() :]
    value = env.get(name)
    if rest == "":
        return value or ""
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            break
    else:
        raise ValueError(f"invalid interpolation ${{{inner}}}")
    present = value is not None and (value != "" or ":" not in op)
    if op.endswith("-"):
        return value if present else interpolate(arg, env)  # type: ignore[return-value]
    if op.endswith("?"):
        if not present:
            raise MissingVariable(name, interpolate(arg, env))
        return value  # type: ignore[return-value]
    return interpolate(arg, env) if present else ""


def referenced_variables(text: str) -> set[str]:
    """Every variable a string refers to, including those inside unused defaults."""
    text = text.replace("$$", "")
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Compose interpolates values, never keys."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, Mapping):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    return node


@cache
def load_compose_raw() -> dict[str, Any]:
    """The YAML with anchors and ``<<`` merges applied, not yet interpolated (shared: do not mutate)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """What ``docker compose config`` would print (for the parts parley uses)."""
    return interpolate_tree(load_compose_raw(), env)


# --- .env files --------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvLine:
    name: str
    value: str
    commented: bool  # ``# NAME=value``: documents a default, sets nothing
    lineno: int


_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def _env_value(raw: str) -> str:
    raw = raw.strip()
    if raw[:1] in {'"', "'"}:
        quote = raw[0]
        end = raw.find(quote, 1)
        if end < 0:
            raise ValueError(f"unterminated quote in {raw!r}")
        inner = raw[1:end]
        return inner.replace('\\"', '"').replace("\\n", "\n") if quote == '"' else inner
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()


def parse_env_file(path: Path = ENV_EXAMPLE) -> list[EnvLine]:
    """Assignments, and commented-out assignments, in file order."""
    lines: list[EnvLine] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        commented = stripped.startswith("#")
        body = stripped.lstrip("#").strip() if commented else stripped
        match = _ASSIGNMENT.match(body)
        if match is None:
            if stripped and not commented:
                raise ValueError(f"{path.name}:{lineno}: not NAME=value: {line!r}")
            continue
        lines.append(EnvLine(match.group(1), _env_value(match.group(2)), commented, lineno))
    return lines


def env_file_values(lines: list[EnvLine]) -> dict[str, str]:
    return {line.name: line.value for line in lines if not line.commented}


# --- services ----------------------------------------------------------------------------
def command_argv(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command")
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list), f"no command: {service}"
    return [str(part) for part in command]


def split_commands(argv: list[str]) -> list[list[str]]:
    """``sh -c "a && b"`` → [a, b]; any other argv is one command."""
    if argv[:2] == ["sh", "-c"] and len(argv) == 3:
        parts = [shlex.split(part) for part in argv[2].split("&&")]
        for part in parts:
            assert not set(part) & {";", "|", "||", "&"}, f"only && chains are understood: {argv[2]!r}"
        return parts
    return [argv]


def container_env(service: Mapping[str, Any], env_file: Mapping[str, str]) -> dict[str, str]:
    """The environment a container of ``service`` starts with: env_file, then environment."""
    result: dict[str, str] = {}
    if service.get("env_file"):
        assert service["env_file"] == ".env", "parley services read exactly .env"
        result.update(env_file)
    environment = service.get("environment") or {}
    assert isinstance(environment, Mapping), "environment must be a mapping"
    result.update({key: "" if value is None else str(value) for key, value in environment.items()})
    return result


def healthcheck_argv(check: Mapping[str, Any]) -> list[str]:
    test = check["test"]
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(part) for part in test]


# --- .dockerignore and the build context ---------------------------------------------------
def _ignore_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().lstrip("/").rstrip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per line; later lines win, as in Docker."""
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        rules.append((exception, _ignore_regex(line[1:] if exception else line)))
    return rules


def is_ignored(relpath: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: a pattern excludes a path if it matches it or one of its parents."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for exception, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not exception
    return ignored


def build_context(dest: Path) -> list[str]:
    """Copy what ``docker build .`` would send into ``dest``; return the relative paths."""
    rules = dockerignore_rules()
    # Excluded directories are pruned whole, which is right only without "!" exceptions.
    assert not [regex for exception, regex in rules if exception], "teach build_context about ! rules"
    copied: list[str] = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        base = Path(dirpath).relative_to(ROOT)
        dirnames[:] = sorted(d for d in dirnames if not is_ignored((base / d).as_posix(), rules))
        for name in sorted(filenames):
            rel = (base / name).as_posix()
            if is_ignored(rel, rules):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(dirpath) / name, target)
            copied.append(rel)
    return copied


# --- Dockerfile --------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    lineno: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN, else None."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = re.split(r"\bCMD\b", text, maxsplit=1)[-1]
        text = text.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker too
        if not pending:
            start = lineno
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions
