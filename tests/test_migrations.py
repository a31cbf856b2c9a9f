"""Alembic and the models agree, and the schema goes up and down on Postgres and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from conversation.models import Base
from tests.support.database import create_database, drop_database
from tests.support.services import service_missing

ROOT = Path(__file__).resolve().parents[1]


def config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


def roundtrip(url: str) -> None:
    cfg = config(url)
    command.upgrade(cfg, "head")
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    command.downgrade(cfg, "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    command.upgrade(cfg, "head")  # and back up again, as an upgrade after a rollback would
    engine.dispose()


@pytest.mark.postgres
def test_upgrade_downgrade_on_postgres() -> None:
    try:
        url = create_database()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    try:
        roundtrip(url)
    finally:
        drop_database(url)


def test_upgrade_downgrade_on_sqlite(tmp_path: Path) -> None:
    roundtrip(f"sqlite:///{tmp_path / 'parley.sqlite3'}")


@pytest.mark.postgres
def test_one_live_conversation_per_user_is_a_database_constraint(pg_engine) -> None:
    uniques = inspect(pg_engine).get_unique_constraints("conversation_state")
    assert any(u["column_names"] == ["user_key"] for u in uniques)
    indexes = {tuple(i["column_names"]) for i in inspect(pg_engine).get_indexes("conversation_state")}
    assert ("expires_at",) in indexes
