"""The receiver: a thin Flask app. ``gunicorn "webhook:create_app()"``; ``flask --app webhook ...``.

Importing this package has no side effects: settings are read, and the Celery app is
built, only when ``create_app()`` runs.

What ``create_app`` registers, and when:

- always: ``/webhook`` (receiver.py), ``/healthz`` and ``/readyz`` (health.py),
  ``/metrics`` (metrics.py), and the CLI commands (webhook/cli/, loaded only when the
  ``flask`` command looks one up);
- the console (webhook/console/), each part only when its rule below says so, and only
  then imported: a receiver in production without ``PARLEY_ADMIN_TOKEN`` loads none of
  it, nor the domain it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, jsonify, redirect, url_for
from gunicorn.errors import AppImportError

import settings as settings_module
from conversation.logs import configure_logging
from settings import Settings

log = logging.getLogger(__name__)


def admin_enabled(settings: Settings) -> bool:
    """The admin API needs a token; production has no default one."""
    return bool(settings.admin_token)


def sandbox_enabled(settings: Settings) -> bool:
    """The sandbox Graph API: only while no Meta token is configured, never in production.

    With a real token the worker talks to Meta; a sandbox endpoint left open would then
    only be a place to record fake traffic with a guessable development token.
    """
    return settings.sandbox and not settings.production


def simulator_enabled(settings: Settings) -> bool:
    """``PARLEY_SIMULATOR`` when set; else on with the sandbox outside production."""
    if settings.simulator is not None:
        return settings.simulator
    return settings.sandbox and not settings.production


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the receiver app.

    ``test_config`` may carry ``SETTINGS`` (a ``settings.Settings``), ``ENQUEUE`` (a
    callable taking the raw body text) and ``READINESS_CHECKS`` (name → callable that
    raises when down); everything else goes into ``app.config``. Raises
    ``settings.SettingsError`` (a one-line reason) when production settings are unsafe.
    """
    config = dict(test_config or {})
    settings = config.pop("SETTINGS", None) or _settings_or_refuse()
    app = Flask(__name__)
    app.config["PARLEY_SETTINGS"] = settings
    # A safety net for other blueprints; /webhook enforces its own limit while reading.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if "ENQUEUE" not in config:
        # Imported here, not at module level: importing worker builds the Celery app.
        from worker.dispatch import enqueue_payload

        app.config["ENQUEUE"] = enqueue_payload
    app.config.update(config)
    configure_logging(settings)

    from webhook import metrics
    from webhook.cli import Commands
    from webhook.health import bp as health_bp
    from webhook.receiver import bp as receiver_bp

    app.cli = Commands(name=app.name)
    app.register_blueprint(receiver_bp)
    app.register_blueprint(health_bp)
    _register_console(app, settings)
    metrics.init_app(app)
    app.add_url_rule("/", "index", _index)
    return app


# What ``/`` lists when there is no simulator to send a visitor to: paths only, never settings.
_PARTS = {"sandbox": "/sandbox", "admin": "/admin/api/openapi.json", "inbox": "/console/inbox"}


def _index() -> Response:
    """``/``: the simulator when it is on (the first thing to open), else what this receiver serves."""
    if "simulator" in current_app.blueprints:
        return redirect(url_for("simulator.page"))
    served = {"webhook": "/webhook", "health": "/healthz", "ready": "/readyz", "metrics": "/metrics"}
    served |= {name: path for name, path in _PARTS.items() if name in current_app.blueprints}
    return jsonify(service="parley", paths=served)


def _register_console(app: Flask, settings: Settings) -> None:
    """Each console part is imported only when it is on (see the rules above)."""
    if sandbox_enabled(settings):
        from webhook.console import sandbox

        sandbox.init_app(app)
    if admin_enabled(settings):
        from webhook.console import admin, handoffs

        admin.init_app(app)
        handoffs.init_app(app)
    else:
        log.warning("admin API disabled: PARLEY_ADMIN_TOKEN is not set")
    if simulator_enabled(settings):
        from webhook.console import simulator

        simulator.init_app(app)


class StartRefused(settings_module.SettingsError, AppImportError):
    """Unsafe production settings. As gunicorn's AppImportError, gunicorn prints this one
    line and stops, instead of a traceback for every worker it would respawn."""


def _settings_or_refuse() -> settings_module.Settings:
    try:
        return settings_module.get_settings()
    except settings_module.SettingsError as exc:
        raise StartRefused(" ".join(str(exc).split())) from None
