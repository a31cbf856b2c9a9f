"""Real services or nothing: skip locally, fail in CI, when one is missing."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def service_missing(what: str, exc: BaseException) -> None:
    """Skip locally, fail in CI: a missing service must never turn CI green."""
    message = f"{what} is not reachable: {exc.__class__.__name__}: {exc}"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
