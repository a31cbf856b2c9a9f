"""Resolve parley's entry points the way the real tools do, from a build context only.

Run as ``python entrypoint_probe.py CONTEXT_DIR < commands.json`` (a JSON list of argv
lists) with the environment a container would get; prints a JSON list of facts, one per
command. Only the standard library, the installed dependencies and CONTEXT_DIR are
importable: the repository itself is not on ``sys.path``, so a module the image would
lack fails here too. Each tool parses its own command line (unknown options fail) and
resolves its app with its own loader; nothing is run.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import Any


def _isolate(context: Path) -> None:
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p not in ("", here, os.getcwd())]
    sys.path.insert(0, str(context))
    os.chdir(context)


def gunicorn_fact(args: list[str]) -> dict[str, Any]:
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = ["gunicorn", *args]
    runner = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]")  # parses argv and any -c file
    app = runner.load()  # imports "module:factory()" exactly as a worker does
    cfg = runner.cfg
    return {
        "app_uri": runner.app_uri,
        "class": f"{type(app).__module__}.{type(app).__qualname__}",
        "rules": sorted(map(str, app.url_map.iter_rules())),
        "bind": cfg.bind,
        "workers": cfg.workers,
        "config": cfg.config,
    }


def celery_fact(args: list[str]) -> dict[str, Any]:
    from celery import Celery
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as cli

    ctx = cli.make_context("celery", list(args))
    app = find_app(ctx.params["app"])  # what `celery -A name` does
    assert isinstance(app, Celery), f"-A {ctx.params['app']} is not a Celery app: {app!r}"
    ctx.obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # click 8.2 renamed protected_args
        rest = [*ctx.protected_args, *ctx.args]
    command = cli.get_command(ctx, rest[0])
    assert command is not None, f"celery has no command {rest[0]!r}"
    params = command.make_context(rest[0], rest[1:], parent=ctx).params
    app.loader.import_default_modules()
    return {
        "app": ctx.params["app"],
        "command": rest[0],
        "main": app.main,
        "options": {k: v for k, v in params.items() if isinstance(v, str | int | float | list)},
        "pool": repr(params.get("pool")),  # the pool class --pool resolved to
        "queues": sorted(q.name for q in app.conf.task_queues or ()),
        "tasks": sorted(t for t in app.tasks if not t.startswith("celery.")),
        "beat_tasks": sorted(entry["task"] for entry in (app.conf.beat_schedule or {}).values()),
    }


def flask_fact(args: list[str]) -> dict[str, Any]:
    import click
    from flask.cli import ScriptInfo

    assert args[0] == "--app", "flask --app MODULE ..."
    app = ScriptInfo(app_import_path=args[1]).load_app()  # what `flask --app` does
    command: Any = app.cli
    words = args[2:]
    while isinstance(command, click.Group) and words:
        found = command.get_command(click.Context(command), words[0])
        assert found is not None, f"flask --app {args[1]}: no command {words[0]!r}"
        command, words = found, words[1:]
    # Parse (not run) the arguments: click checks e.g. that a Path(exists=True) exists.
    ctx = command.make_context(command.name, words)
    return {"command": command.name, "params": {k: str(v) for k, v in ctx.params.items()}}


def alembic_fact(args: list[str]) -> dict[str, Any]:
    from alembic.config import CommandLine, Config
    from alembic.script import ScriptDirectory

    options = CommandLine().parser.parse_args(args)
    script = ScriptDirectory.from_config(Config(options.config or "alembic.ini"))
    return {
        "command": options.cmd[0].__name__,
        "revision": getattr(options, "revision", None),
        "heads": list(script.get_heads()),
    }


def python_fact(args: list[str]) -> dict[str, Any]:
    """``python -m module ARGS``: the module imports and its argument parser takes ARGS."""
    import importlib

    assert args[0] == "-m", f"python {args[0]!r}: only -m module is an entry point"
    module = importlib.import_module(args[1])
    options = vars(module.build_parser().parse_args(args[2:]))
    return {"module": args[1], "options": {k: str(v) if v is not None else None for k, v in options.items()}}


FACTS = {
    "python": python_fact,
    "gunicorn": gunicorn_fact,
    "celery": celery_fact,
    "flask": flask_fact,
    "alembic": alembic_fact,
}


def installed_modules(before: set[str]) -> list[str]:
    """Top-level modules imported since ``before`` that came from site-packages."""
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    found = set()
    for name, module in list(sys.modules.items()):
        top = name.split(".")[0]
        path = getattr(module, "__file__", None) or ""
        if top not in before and any(path.startswith(root) for root in roots):
            found.add(top)
    return sorted(found)


def main() -> None:
    before = {name.split(".")[0] for name in sys.modules}
    context = Path(sys.argv[1]).resolve()
    _isolate(context)
    commands = json.load(sys.stdin)
    facts: list[dict[str, Any]] = []
    for argv in commands:
        if argv[0] not in FACTS:
            raise SystemExit(f"{argv[0]!r} is not a parley entry point")
        facts.append(FACTS[argv[0]](argv[1:]))
    # Every parley module that got imported must come from the context, not elsewhere.
    ours = ("webhook", "worker", "conversation", "templates", "settings", "celery_beat")
    modules = {n: getattr(m, "__file__", None) for n, m in sorted(sys.modules.items()) if n.split(".")[0] in ours}
    print(json.dumps({"commands": facts, "module_files": modules, "installed": installed_modules(before)}))


if __name__ == "__main__":
    main()
