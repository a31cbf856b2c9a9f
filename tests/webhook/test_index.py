"""``/``: a visitor lands on the simulator in development, and on a short list of paths otherwise."""

from __future__ import annotations

import dataclasses

from werkzeug.test import TestResponse

from settings import load_settings
from webhook import create_app


def get_index(**changes: object) -> TestResponse:
    settings = dataclasses.replace(load_settings({"PARLEY_ENV": "test"}), **changes)
    app = create_app({"SETTINGS": settings, "ENQUEUE": lambda _raw: None})
    return app.test_client().get("/")


def test_root_redirects_to_the_simulator_when_it_is_on() -> None:
    answer = get_index(simulator=True, admin_token="a-token-for-this-test")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/simulator/"


def test_without_the_simulator_root_lists_what_is_served() -> None:
    answer = get_index(simulator=False, sandbox=False, admin_token=None)
    assert answer.status_code == 200
    assert answer.json == {
        "service": "parley",
        "paths": {"webhook": "/webhook", "health": "/healthz", "ready": "/readyz", "metrics": "/metrics"},
    }


def test_root_names_the_sandbox_when_it_is_on() -> None:
    answer = get_index(simulator=False, sandbox=True, admin_token=None)
    assert answer.json["paths"]["sandbox"] == "/sandbox"
