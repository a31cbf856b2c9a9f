"""docker-compose.yml and .env.example, checked against the code they deploy.

Docker does not run here, so `docker compose config` is replaced by tests/deploy/files.py
(interpolation, env files) and the entry points are resolved by the real tools (gunicorn,
Celery, Flask, Alembic) from a copy of the Docker build context.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy.engine import make_url

import settings
from tests.deploy.conftest import FILLED, PARLEY_SERVICES
from tests.deploy.files import (
    ROOT,
    EnvLine,
    MissingVariable,
    build_context,
    command_argv,
    container_env,
    env_file_values,
    healthcheck_argv,
    load_compose,
    load_compose_raw,
    referenced_variables,
    split_commands,
    walk_strings,
)
from worker.celery_app import LONGEST_TASK_SECONDS

# The fixed entry points of DESIGN.md, and which service runs which (in order).
ENTRY_POINTS = {
    "migrate": ["alembic", "upgrade", "head"],
    "load flows": ["flask", "--app", "webhook", "templates", "load", "templates/"],
    "receiver": ["gunicorn", "webhook:create_app()"],
    "worker": ["celery", "-A", "worker", "worker"],
    "beat": ["celery", "-A", "celery_beat", "beat"],
}
RUNS = {
    "migrate": ["migrate", "load flows"],
    "web": ["receiver"],
    "worker": ["worker"],
    "sender": ["worker"],
    "beat": ["beat"],
}
# Variables that size the deployment; compose reads them, parley never does.
COMPOSE_KNOBS = {
    "POSTGRES_PASSWORD",
    "POSTGRES_MAX_CONNECTIONS",
    "REDIS_MAXMEMORY",
    "WEB_PORT",
    "WEB_WORKERS",
    "WORKER_CONCURRENCY",
    "WORKER_QUEUES",
    "SENDER_THREADS",
    "FLOWER_PORT",
    "FLOWER_BASIC_AUTH",
}
# Imported when present, fine when absent (try/except ImportError in the library).
OPTIONAL_IMPORTS = {"pygments": "celery/bin/base.py: colours in CLI output"}
INFRA_IMAGES = {"postgres": "postgres:", "redis": "redis:", "flower": "mher/flower:"}


def option(argv: list[str], *names: str) -> str | None:
    """The value of ``--name value`` / ``--name=value`` / ``-n value`` in ``argv``."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def seconds(value: str | int) -> float:
    if isinstance(value, int):
        return float(value)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value):
        total += float(number) * units[unit]
    assert total > 0, f"cannot read duration {value!r}"
    return total


def runtime_distributions(requirements: Path) -> set[str]:
    """Every distribution ``pip install -r requirements`` brings in (extras and markers followed)."""
    todo = [
        Requirement(line.split("#")[0].strip())
        for line in requirements.read_text().splitlines()
        if line.split("#")[0].strip() and not line.startswith("-")
    ]
    extras_seen: dict[str, set[str]] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in extras_seen and set(req.extras) <= extras_seen[name]:
            continue
        extras = extras_seen.setdefault(name, set())
        extras |= set(req.extras)
        for raw in importlib.metadata.requires(name) or []:
            dep = Requirement(raw)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras | {""}):
                todo.append(dep)
    return set(extras_seen)


def settings_for(service: Mapping[str, Any], dotenv: Mapping[str, str]) -> settings.Settings:
    return settings.load_settings(container_env(service, dotenv))


# --- what runs ------------------------------------------------------------------------------
def test_the_services_are_the_deployment_of_the_issue(services: dict[str, Any]) -> None:
    assert set(services) == {*PARLEY_SERVICES, "postgres", "redis", "flower"}
    for name in PARLEY_SERVICES:
        assert services[name]["build"] == ".", f"{name} must run the image of this repository"
        assert services[name]["image"] == "parley:local"
    for name, prefix in INFRA_IMAGES.items():
        image = services[name]["image"]
        assert image.startswith(prefix) and "build" not in services[name]
        tag = image.split(":", 1)[1]
        assert tag and tag != "latest", f"{name}: pin the image version, not {image!r}"
    assert services["flower"]["profiles"] == ["flower"], "Flower is optional: it needs its profile"


@pytest.mark.parametrize("service", PARLEY_SERVICES)
def test_each_service_runs_the_fixed_entry_points(services: dict[str, Any], service: str) -> None:
    commands = split_commands(command_argv(services[service]))
    expected = [ENTRY_POINTS[what] for what in RUNS[service]]
    assert [argv[: len(entry)] for argv, entry in zip(commands, expected, strict=True)] == expected


def test_entry_points_resolve_from_the_docker_build_context(
    services: dict[str, Any], dotenv: dict[str, str], tmp_path: Path
) -> None:
    """Copy exactly what `docker build .` sends, then let gunicorn, Celery, Flask and
    Alembic parse every command of the compose file (and the worker's health check) and
    resolve its app from that copy, in the web container's production environment."""
    context = tmp_path / "app"
    files = build_context(context)
    assert not [f for f in files if f.startswith(("tests/", ".git/", ".venv")) or f == ".env"]

    commands = {name: split_commands(command_argv(services[name])) for name in PARLEY_SERVICES}
    health = shlex.split(healthcheck_argv(services["worker"]["healthcheck"])[1].split(">")[0])
    everything = [argv for name in PARLEY_SERVICES for argv in commands[name]] + [health]
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        **container_env(services["web"], dotenv),
        "PARLEY_METRICS_DIR": str(tmp_path / "metrics"),  # /app/var/metrics in the image
    }
    probe = Path(__file__).with_name("entrypoint_probe.py")
    done = subprocess.run(
        [sys.executable, str(probe), str(context)],
        input=json.dumps(everything),
        env=env,
        cwd=context,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    facts = dict(zip(map(tuple, everything), result["commands"], strict=True))

    outside = {m: f for m, f in result["module_files"].items() if f and not f.startswith(str(context))}
    assert not outside, f"imported from outside the build context: {outside}"
    # The image installs requirements.txt only: every library the entry points import must
    # come from it (this venv also has the test tools, which the image does not).
    provided = runtime_distributions(ROOT / "requirements.txt")
    owners = importlib.metadata.packages_distributions()
    missing = {
        m: owners.get(m)
        for m in result["installed"]
        if m not in OPTIONAL_IMPORTS and not {canonicalize_name(d) for d in owners.get(m, [])} & provided
    }
    assert not missing, f"imported at runtime but not installed by requirements.txt: {missing}"
    [migrate, flows] = (facts[tuple(argv)] for argv in commands["migrate"])
    assert (migrate["command"], migrate["revision"]) == ("upgrade", "head")
    assert len(migrate["heads"]) == 1, f"alembic upgrade head needs one head, found {migrate['heads']}"
    assert flows == {"command": "load", "params": {"directory": "templates/"}}
    [web] = (facts[tuple(argv)] for argv in commands["web"])
    assert web["class"] == "flask.app.Flask" and web["app_uri"] == "webhook:create_app()"
    assert {"/webhook", "/healthz", "/readyz"} <= set(web["rules"])
    assert web["bind"] == ["0.0.0.0:8000"]
    [worker] = (facts[tuple(argv)] for argv in commands["worker"])
    [sender] = (facts[tuple(argv)] for argv in commands["sender"])
    [beat] = (facts[tuple(argv)] for argv in commands["beat"])
    assert (worker["command"], sender["command"], beat["command"]) == ("worker", "worker", "beat")
    assert worker["main"] == sender["main"] == beat["main"] == "parley", "one Celery app for all"
    assert beat["beat_tasks"] and set(beat["beat_tasks"]) <= set(worker["tasks"])
    consumed = set(worker["options"]["queues"]) | set(sender["options"]["queues"])
    assert consumed == set(worker["queues"]), "the workers must consume every queue"
    assert sender["options"]["queues"] == ["outbound"] and "celery.concurrency.thread" in sender["pool"]
    probe = facts[tuple(health)]
    assert probe["module"] == "worker.health" and probe["options"]["nodename"] == "celery@$HOSTNAME"
    assert int(probe["options"]["restart_after"]) > 0, "a stuck worker must be stopped so `restart` replaces it"
    assert "parley.health.probe" in worker["tasks"], "the probe task must be registered in the workers"


# --- variables --------------------------------------------------------------------------------
class Recording(dict[str, str]):
    """An environment that remembers every name it was asked for."""

    def __init__(self, values: Mapping[str, str], seen: set[str]) -> None:
        super().__init__(values)
        self.seen = seen

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.seen.add(key)
        return super().__contains__(key)


def test_env_vars_lists_exactly_what_load_settings_reads(services: dict[str, Any], dotenv: dict[str, str]) -> None:
    seen: set[str] = set()
    settings.load_settings(Recording({}, seen))
    settings.load_settings(Recording({"WHATSAPP_ACCESS_TOKEN": "t"}, seen))
    settings.load_settings(Recording(container_env(services["web"], dotenv), seen))
    assert seen == set(settings.ENV_VARS), (
        f"settings.ENV_VARS is out of date: add {sorted(seen - set(settings.ENV_VARS))}, "
        f"remove {sorted(set(settings.ENV_VARS) - seen)}"
    )


def test_every_variable_is_one_parley_reads_or_a_documented_compose_knob(env_lines: list[EnvLine]) -> None:
    known = set(settings.ENV_VARS)
    documented = {line.name for line in env_lines}
    raw = load_compose_raw()
    used = set().union(*(referenced_variables(s) for s in walk_strings(raw)))

    assert documented <= known | COMPOSE_KNOBS, f"unknown in .env.example: {sorted(documented - known - COMPOSE_KNOBS)}"
    assert used <= documented, (
        f"docker-compose.yml uses variables .env.example does not document: {sorted(used - documented)}"
    )
    assert used >= COMPOSE_KNOBS, f"knobs docker-compose.yml never uses: {sorted(COMPOSE_KNOBS - used)}"
    assert known <= documented, f".env.example does not document settings {sorted(known - documented)}"
    assert not known & COMPOSE_KNOBS
    for name in PARLEY_SERVICES:
        environment = raw["services"][name].get("environment") or {}
        assert set(environment) <= known, f"{name}: {sorted(set(environment) - known)} are not parley settings"
    assert len([line.name for line in env_lines]) == len(documented), ".env.example names a variable twice"


def test_production_settings_load_in_every_parley_container(services: dict[str, Any], dotenv: dict[str, str]) -> None:
    for name in PARLEY_SERVICES:
        loaded = settings_for(services[name], dotenv)
        assert loaded.production and not loaded.sandbox
        db, broker = make_url(loaded.database_url), make_url(loaded.broker_url.replace("redis://", "redis+x://", 1))
        assert (db.drivername, db.host, db.port, db.database, db.username) == (
            "postgresql+psycopg",
            "postgres",
            5432,
            services["postgres"]["environment"]["POSTGRES_DB"],
            services["postgres"]["environment"]["POSTGRES_USER"],
        )
        assert db.password == FILLED["POSTGRES_PASSWORD"] == services["postgres"]["environment"]["POSTGRES_PASSWORD"]
        assert (broker.host, broker.port) == ("redis", 6379)
        assert loaded.api_url.startswith("https://graph.facebook.com/")


def test_a_missing_required_setting_stops_compose_not_a_container(
    services: dict[str, Any], dotenv: dict[str, str], env_lines: list[EnvLine]
) -> None:
    """Blank any value of .env: either compose refuses, naming it, or every container still
    gets production settings it accepts. Never a crash loop behind `compose up`."""
    refused = set()
    for blank in env_file_values(env_lines):
        env = {**dotenv, blank: ""}
        try:
            resolved = load_compose(env)["services"]
        except MissingVariable as exc:
            assert exc.name == blank and blank in str(exc)
            refused.add(blank)
            continue
        for name in PARLEY_SERVICES:
            settings_for(resolved[name], env)
    assert refused == set(FILLED)
    # And each production requirement of settings.py is guarded in `environment`, where
    # compose checks it, rather than only passed through env_file.
    web_env = container_env(services["web"], dotenv)
    environment = load_compose_raw()["services"]["web"]["environment"]
    for var in settings.ENV_VARS:
        if var not in web_env:
            continue
        without = {k: v for k, v in web_env.items() if k != var}
        try:
            settings.load_settings(without)
        except settings.SettingsError:
            assert var in environment, f"{var} is required in production: set it in `environment` with ${{{var}:?...}}"


def test_the_example_as_shipped_is_refused_with_the_variable_named() -> None:
    from tests.deploy.files import parse_env_file

    with pytest.raises(MissingVariable) as excinfo:
        load_compose(env_file_values(parse_env_file()))
    assert excinfo.value.name in FILLED


def test_commented_values_in_env_example_are_the_defaults(
    services: dict[str, Any], dotenv: dict[str, str], env_lines: list[EnvLine]
) -> None:
    baseline = {name: settings_for(services[name], dotenv) for name in PARLEY_SERVICES}
    for line in env_lines:
        if not line.commented or line.value == "":
            continue
        env = {**dotenv, line.name: line.value}
        changed = load_compose(env)
        assert changed == load_compose(dotenv) or line.name in settings.ENV_VARS, (
            f".env.example:{line.lineno}: {line.name}={line.value} is not the compose default"
        )
        for name in PARLEY_SERVICES:
            assert settings_for(changed["services"][name], env) == baseline[name], (
                f".env.example:{line.lineno}: {line.name}={line.value} is not the default in effect"
            )


# --- dependencies, health, scaling ---------------------------------------------------------------
def _effective_healthcheck(service: Mapping[str, Any]) -> list[str] | None:
    check = service.get("healthcheck")
    if check is not None:
        return None if check.get("disable") else healthcheck_argv(check)
    if service.get("build") == ".":
        return ["Dockerfile HEALTHCHECK"]
    return None


def test_every_dependency_waits_for_health_or_completion(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert _effective_healthcheck(services[target]), f"{name} waits for {target} health it never reports"
            else:
                assert condition == "service_completed_successfully", f"{name} → {target}: {condition}"
                assert services[target].get("restart") == "no", f"{target} is waited on to exit: restart must be 'no'"
    for name in ("web", "worker", "sender", "beat"):
        deps = {t: s["condition"] for t, s in services[name]["depends_on"].items()}
        assert deps == {
            "postgres": "service_healthy",
            "redis": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # No cycles: compose would refuse to start.
    order: list[str] = []
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(s.get("depends_on") or {}) <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order += ready
        for n in ready:
            del pending[n]


def test_health_checks_probe_the_right_things(services: dict[str, Any]) -> None:
    web_argv = command_argv(services["web"])
    port = option(web_argv, "--bind", "-b").rsplit(":", 1)[1]  # type: ignore[union-attr]
    assert option(web_argv, "--bind", "-b") == f"0.0.0.0:{port}", "behind a load balancer: bind all interfaces"
    web_check = " ".join(healthcheck_argv(services["web"]["healthcheck"]))
    assert f"127.0.0.1:{port}/healthz" in web_check
    assert any(p.endswith(f":{port}") for p in services["web"]["ports"])
    for name in ("worker", "sender"):
        worker_check = " ".join(healthcheck_argv(services[name]["healthcheck"]))
        # A task round trip (inspect ping answers from a worker that takes no tasks).
        assert "python -m worker.health celery@$HOSTNAME" in worker_check and "--restart-after" in worker_check
        # The check stops a stuck worker; the restart policy is what brings it back.
        assert services[name]["restart"] == "unless-stopped"
    assert "pg_isready" in " ".join(healthcheck_argv(services["postgres"]["healthcheck"]))
    assert healthcheck_argv(services["redis"]["healthcheck"])[1:] == ["redis-cli", "ping"]
    for name in ("postgres", "redis", "web", "worker", "sender"):
        check = services[name]["healthcheck"]
        assert seconds(check["timeout"]) < seconds(check["interval"]), name


def test_workers_scale_and_beat_stays_single(services: dict[str, Any]) -> None:
    assert not [n for n, s in services.items() if "container_name" in s], "container_name blocks --scale"
    for name in ("worker", "sender"):
        worker = services[name]
        assert "ports" not in worker, f"a published port would stop --scale {name}=N at the second container"
        assert seconds(worker["stop_grace_period"]) >= LONGEST_TASK_SECONDS, "warm shutdown must outlast a task"
        argv = command_argv(worker)
        assert int(option(argv, "--concurrency", "-c") or 0) >= 1
    beat = services["beat"]
    assert beat["deploy"]["replicas"] == 1
    assert option(command_argv(beat), "--schedule", "-s", "-S") is not None, "a writable schedule file"
    published = {n for n, s in services.items() if s.get("ports")}
    assert published == {"web", "flower"}, "only the receiver (and loopback Flower) listen outside"


def test_redis_persists_and_never_evicts_work(services: dict[str, Any], compose: dict[str, Any]) -> None:
    argv = command_argv(services["redis"])
    assert argv[0] == "redis-server"
    assert option(argv, "--appendonly") == "yes"
    assert option(argv, "--maxmemory-policy") == "noeviction"
    assert option(argv, "--maxmemory")
    assert "redisdata:/data" in services["redis"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert set(compose["volumes"]) == {"pgdata", "redisdata"}
    argv = command_argv(services["postgres"])
    assert re.fullmatch(r"max_connections=\d+", option(argv, "-c") or "")


def test_flower_is_private_and_watches_the_same_broker(services: dict[str, Any], dotenv: dict[str, str]) -> None:
    flower = services["flower"]
    assert command_argv(flower)[:2] == ["celery", "flower"]
    assert flower["environment"]["CELERY_BROKER_URL"] == settings_for(services["worker"], dotenv).broker_url
    assert all(p.startswith("127.0.0.1:") for p in flower["ports"]), "Flower has no auth by default: loopback only"
    assert flower["depends_on"] == {"redis": {"condition": "service_healthy"}}
