"""The Dockerfile and .dockerignore: hadolint-like checks of what the image promises."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from tests.deploy.conftest import PARLEY_SERVICES
from tests.deploy.files import (
    ROOT,
    Instruction,
    build_context,
    command_argv,
    dockerignore_rules,
    is_ignored,
    parse_dockerfile,
    split_commands,
)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile()


def first(instructions: list[Instruction], keyword: str, pattern: str = "") -> int:
    for n, ins in enumerate(instructions):
        if ins.keyword == keyword and re.search(pattern, ins.args):
            return n
    pytest.fail(f"no {keyword} matching {pattern!r} in the Dockerfile")


def test_slim_python_base_matching_the_project(instructions: list[Instruction]) -> None:
    froms = [ins for ins in instructions if ins.keyword == "FROM"]
    assert len(froms) == 1, "one stage is enough: psycopg[binary] needs no compiler"
    image = froms[0].args.split()[0]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert re.fullmatch(rf"python:{re.escape(version)}-slim(-\w+)?", image), image
    assert instructions[0].keyword == "FROM"


def test_dependencies_are_their_own_layer_before_the_source(instructions: list[Instruction]) -> None:
    copy_requirements = first(instructions, "COPY", r"^requirements\.txt\s")
    install = first(instructions, "RUN", r"pip install .*-r requirements\.txt")
    copy_source = first(instructions, "COPY", r"^\.\s")
    assert copy_requirements < install < copy_source
    assert "--no-cache-dir" in instructions[install].args
    assert not [i for i in instructions if i.keyword == "ADD"], "COPY, not ADD (no remote URLs, no auto-extraction)"
    assert "requirements-dev" not in " ".join(i.args for i in instructions), "the image carries no test tools"


def test_runs_as_an_unprivileged_user(instructions: list[Instruction]) -> None:
    users = [n for n, i in enumerate(instructions) if i.keyword == "USER"]
    assert users, "no USER: the processes would run as root"
    last = instructions[users[-1]]
    name = last.args.split(":")[0]
    assert name not in {"root", "0"}
    assert not [i for i in instructions[users[-1] :] if i.keyword == "RUN"], "RUN after USER would need root"
    created = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert re.search(rf"useradd\b.*\b{re.escape(name)}\b", created), f"USER {name} is never created"


def test_health_check_and_default_command_serve_the_receiver(
    instructions: list[Instruction], services: dict[str, Any]
) -> None:
    [check] = [i for i in instructions if i.keyword == "HEALTHCHECK"]
    argv = check.exec_form()
    assert argv is not None, "HEALTHCHECK CMD in exec form (no shell in the way)"
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in check.args
    [cmd] = [i for i in instructions if i.keyword == "CMD"]
    default = cmd.exec_form()
    assert default is not None, "CMD in exec form, so gunicorn gets SIGTERM directly"
    web = command_argv(services["web"])
    assert default[:2] == web[:2] == ["gunicorn", "webhook:create_app()"]
    bind = default[default.index("--bind") + 1]
    assert bind == web[web.index("--bind") + 1] == "0.0.0.0:8000"
    port = bind.rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(argv)
    assert [i.args for i in instructions if i.keyword == "EXPOSE"] == [port]
    assert not [i for i in instructions if i.keyword == "ENTRYPOINT"], "compose commands replace CMD as a whole"
    if "--config" in default:
        config = default[default.index("--config") + 1]
        assert (ROOT / config).is_file() and not is_ignored(config, dockerignore_rules()), (
            f"{config} is not in the image"
        )
        assert config == web[web.index("--config") + 1]


def test_dockerignore_keeps_secrets_and_local_state_out(tmp_path: Any) -> None:
    rules = dockerignore_rules()
    for path in (".env", ".env.production", ".git/HEAD", ".venv/bin/python", "var/parley.sqlite3", "tests/conftest.py"):
        assert is_ignored(path, rules), f"{path} would be sent to the Docker daemon"
    for path in ("webhook/__init__.py", "migrations/env.py", "templates/main_menu.yaml", "alembic.ini"):
        assert not is_ignored(path, rules), f"{path} is needed at runtime"
    files = build_context(tmp_path)
    assert "requirements.txt" in files and "settings.py" in files and "celery_beat.py" in files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


def test_every_command_runs_from_the_workdir(instructions: list[Instruction], services: dict[str, Any]) -> None:
    [workdir] = [i.args for i in instructions if i.keyword == "WORKDIR"]
    assert workdir == "/app"
    for name in PARLEY_SERVICES:
        for argv in split_commands(command_argv(services[name])):
            for arg in argv:
                # Relative paths (alembic.ini, templates/) resolve against WORKDIR: they
                # must exist in the repository root, which COPY . . puts there.
                if arg.endswith("/") and not arg.startswith("/"):
                    assert (ROOT / arg).is_dir(), f"{name}: {arg} is not in the image"
            schedule = argv[argv.index("--schedule") + 1] if "--schedule" in argv else None
            if schedule:
                assert schedule.startswith("/app/var/"), "Beat writes its schedule where the image lets it"
    assert any("chown parley:parley /app/var" in i.args for i in instructions if i.keyword == "RUN")
