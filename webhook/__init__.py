"""The receiver: a thin Flask app. ``gunicorn "webhook:create_app()"``; ``flask --app webhook ...``."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from settings import get_settings

OPTIONAL_EXTENSIONS = ("webhook.cli", "webhook.sandbox")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; refuses (SettingsError, one line) when production settings are unsafe."""
    test_config = dict(test_config or {})
    settings = test_config.pop("SETTINGS", None) or get_settings()
    app = Flask(__name__)
    app.config["PARLEY_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if "ENQUEUE" not in test_config:
        from worker.dispatch import enqueue_payload

        app.config["ENQUEUE"] = enqueue_payload
    app.config.update(test_config)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from webhook.health import bp as health_bp
    from webhook.receiver import bp as receiver_bp

    app.register_blueprint(receiver_bp)
    app.register_blueprint(health_bp)
    _register_extensions(app)
    return app


def _register_extensions(app: Flask) -> None:
    for name in OPTIONAL_EXTENSIONS:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).init_app(app)
