"""``/healthz`` (the process answers) and ``/readyz`` (broker and database reachable)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def check_database() -> None:
    from conversation.db import get_engine

    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def check_broker() -> None:
    from worker.celery_app import app as celery

    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


DEFAULT_CHECKS: Mapping[str, Callable[[], None]] = {"broker": check_broker, "database": check_database}


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    return jsonify(status="ok"), 200


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks = current_app.config.get("READINESS_CHECKS") or DEFAULT_CHECKS
    failed = []
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:  # report which dependency is down, not its URL
            log.warning("readiness check %s failed: %s", name, exc.__class__.__name__)
            failed.append(name)
    if failed:
        return jsonify(status="unavailable", failed=failed), 503
    return jsonify(status="ready"), 200
