"""Engine and session factory for PostgreSQL (production) and SQLite (embedded default)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

#: A pooled PostgreSQL connection idle longer than this is pinged before it is used again.
IDLE_PING_S = 5.0
_CHECKED_IN_AT = "gembus_checked_in_at"


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    """Create the engine; SQLite gets WAL and foreign keys, PostgreSQL a ping after idling.

    ``autocommit`` (PostgreSQL only): every connection of the pool is in autocommit from the
    start, for single-statement reads (see read_session_factory).
    """
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    engine = create_engine(url, pool_size=5, max_overflow=10, **options)
    event.listen(engine, "checkin", _stamp_checkin)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _stamp_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_CHECKED_IN_AT] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling for connections that sat idle, and only for them.

    ``pool_pre_ping`` pings at every checkout: a round trip per request on top of the
    request's own statements, for connections a busy worker used a millisecond ago. A
    connection that idled (the database may have restarted meanwhile) is pinged; if the ping
    fails, DisconnectionError makes the pool replace it and retry (SQLAlchemy's documented
    checkout-event recipe). A hot connection that broke anyway fails its statement, which
    invalidates the whole pool, and the unit of work answers Server.Unavailable (retryable).
    """
    idle_since = record.info.get(_CHECKED_IN_AT)
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as error:  # any failure means the connection is gone
        raise exc.DisconnectionError(str(error)) from error


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_session_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for single-statement reads: on PostgreSQL, from a pool of its own whose
    connections are in autocommit from the start. psycopg2 would otherwise send BEGIN before
    the statement and the session ROLLBACK after it (two round trips around one); switching a
    pooled connection to autocommit and back costs a round trip each way, so the read pool
    never switches. Other databases keep ``factory``'s sessions."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine) or bind.dialect.name != "postgresql":
        return factory
    reads = make_engine(bind.url.render_as_string(hide_password=False), autocommit=True)
    return sessionmaker(reads, expire_on_commit=False)
