"""Engine and session factory. The caller owns the unit of work:

    with session_scope() as session:
        ...  # commits on success, rolls back on error

A Celery prefork child calls ``use_engine_options()`` (worker/celery_app.py), which drops
the engine inherited across the fork, so no connection is shared between processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from settings import get_settings

_engine: Engine | None = None
_factory: sessionmaker[Session] | None = None
_options: dict[str, Any] = {}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings parley needs on each backend."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            # SQLite has no row locks: take the write lock up front so two processes
            # serialize instead of failing with "database is locked" on upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 5)
        kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def is_transient(exc: BaseException) -> bool:
    """Database unreachable or restarting: the unit of work may be tried again later as it was."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def get_engine() -> Engine:
    global _engine, _factory
    if _engine is None:
        _engine = make_engine(get_settings().database_url, **_options)
        _factory = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def get_session_factory() -> sessionmaker[Session]:
    get_engine()
    assert _factory is not None
    return _factory


def configure_engine(engine: Engine) -> None:
    """Use ``engine`` for every later session (tests, tools)."""
    global _engine, _factory
    _engine = engine
    _factory = sessionmaker(engine, expire_on_commit=False)


def use_engine_options(**options: Any) -> None:
    """Options for the engine this process builds next (the current one, if any, is dropped)."""
    global _engine, _factory
    _options.update(options)
    if _engine is not None:
        _engine.dispose(close=False)
    _engine = _factory = None


@contextmanager
def using_engine(engine: Engine | None = None) -> Iterator[None]:
    """Sessions use ``engine`` inside the block; the process's engine and options are put
    back when it ends (tests, tools). With no ``engine`` the block starts as a new process
    does: the first session builds one from the settings and ``use_engine_options()``, and
    that engine is disposed when the block ends."""
    global _engine, _factory, _options
    saved = _engine, _factory, _options
    _options = {}
    if engine is None:
        _engine = _factory = None
    else:
        configure_engine(engine)
    try:
        yield
    finally:
        built = _engine if engine is None else None
        _engine, _factory, _options = saved
        if built is not None:
            built.dispose()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, always close."""
    session = get_session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
