"""The receiver: a thin Flask app. ``gunicorn "webhook:create_app()"``; ``flask --app webhook ...``.

Importing this package has no side effects: settings are read, and the Celery app is
built, only when ``create_app()`` runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from gunicorn.errors import AppImportError

import settings as settings_module
from conversation.logs import configure_logging

# Blueprints and CLI groups owned by other parts; each module exposes ``init_app(app)``.
OPTIONAL_EXTENSIONS = (
    "webhook.cli",
    "webhook.sandbox",
    "webhook.admin",
    "webhook.simulator",
    "webhook.chat",
    "webhook.metrics",
)

log = logging.getLogger(__name__)


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

    from webhook.health import bp as health_bp
    from webhook.receiver import bp as receiver_bp

    app.register_blueprint(receiver_bp)
    app.register_blueprint(health_bp)
    _register_extensions(app)
    return app


class StartRefused(settings_module.SettingsError, AppImportError):
    """Unsafe production settings. As gunicorn's AppImportError, gunicorn prints this one
    line and stops, instead of a traceback for every worker it would respawn."""


def _settings_or_refuse() -> settings_module.Settings:
    try:
        return settings_module.get_settings()
    except settings_module.SettingsError as exc:
        raise StartRefused(" ".join(str(exc).split())) from None


def _register_extensions(app: Flask) -> None:
    """Other parts plug in here (CLI commands, the sandbox); each is optional."""
    for name in OPTIONAL_EXTENSIONS:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).init_app(app)
