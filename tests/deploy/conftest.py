"""The deployment files, read once per session, and a filled-in copy of .env.example."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.files import EnvLine, env_file_values, load_compose, parse_env_file

# What an operator would type into the blanks of .env.example (none of it is a secret).
FILLED = {
    "POSTGRES_PASSWORD": "compose-test-password",
    "WHATSAPP_APP_SECRET": "compose-test-app-secret",
    "WHATSAPP_VERIFY_TOKEN": "compose-test-verify-token",
    "WHATSAPP_ACCESS_TOKEN": "compose-test-access-token",
}

# Services built from this repository's Dockerfile; everything else is a stock image.
PARLEY_SERVICES = ("migrate", "web", "worker", "sender", "beat")


@pytest.fixture(scope="session")
def env_lines() -> list[EnvLine]:
    return parse_env_file()


@pytest.fixture(scope="session")
def dotenv(env_lines: list[EnvLine]) -> dict[str, str]:
    """.env.example with its blanks filled: the .env an operator would write."""
    values = env_file_values(env_lines)
    blanks = {name for name, value in values.items() if value == ""}
    assert blanks == set(FILLED), f"update FILLED: .env.example leaves {sorted(blanks)} blank"
    return {**values, **FILLED}


@pytest.fixture(scope="session")
def compose(dotenv: dict[str, str]) -> dict[str, Any]:
    return load_compose(dotenv)


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]
