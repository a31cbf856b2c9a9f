"""Fresh Postgres databases, migrated with Alembic, for tests and benchmarks."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from settings import normalize_database_url
from tests.support.services import service_missing

ROOT = Path(__file__).resolve().parents[2]
ADMIN_URL = normalize_database_url(
    os.environ.get("PARLEY_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)


def migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


def create_database() -> str:
    """A new empty Postgres database; returns its URL."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"parley_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new migrated Postgres database for code that commits for real; dropped after."""
    try:
        url = create_database()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    migrate(url)
    try:
        yield url
    finally:
        drop_database(url)
