"""Worker code opens its own sessions and commits: give it a database of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from conversation import db
from tests.support.database import fresh_database


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """A fresh migrated Postgres database that ``session_scope()`` uses for this module."""
    with fresh_database() as url:
        eng = db.make_engine(url)
        with db.using_engine(eng):  # later tests get the engine they had
            yield eng
        eng.dispose()
