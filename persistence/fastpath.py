"""Statements on the request hot path: one prepared statement, autocommit, async commit.

A pooled SQLAlchemy connection costs a checkout, a reset and a separate COMMIT per use, which
is more than the database needs for a single insert. Here each worker thread keeps one
PostgreSQL connection detached from the pool, in autocommit with ``synchronous_commit=off``
(the reply does not wait for an fsync; a database crash can lose only its last moments), and
prepares each statement once. Any failure closes the connection (the next call reconnects)
and surfaces as a retryable Server.Unavailable. Other databases (SQLite) go through the
ordinary engine: correctness is the same, only the speed differs.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, create_engine, text

from gembus.errors import UnavailableError


def fast_engine(engine: Engine) -> Engine:
    """A small engine for hot-path writes; asynchronous commit on PostgreSQL."""
    if engine.dialect.name != "postgresql":
        return engine
    return create_engine(
        engine.url.render_as_string(hide_password=False),
        pool_size=2,
        max_overflow=4,
        pool_pre_ping=False,
        pool_reset_on_return=None,
        connect_args={"options": "-c synchronous_commit=off"},
    )


class PreparedStatement:
    """``name`` is prepared as ``postgres_sql`` ($1.. parameters, ordered by ``params``);
    ``portable_sql`` (SQLAlchemy :name parameters) serves every other database."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        postgres_sql: str,
        portable_sql: str,
        params: tuple[str, ...],
    ) -> None:
        self.engine = engine
        self.name = name
        self.postgres_sql = postgres_sql
        self.portable = text(portable_sql)
        self.params = params
        self._local = threading.local()

    @property
    def on_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def execute(self, values: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run the statement; returns its first row (if it returns rows)."""
        if not self.on_postgres:
            with self.engine.begin() as connection:
                result = connection.execute(self.portable, values)
                return tuple(result.first() or ()) if result.returns_rows else None
        connection = self._connection()
        placeholders = ", ".join(f"%({p})s" for p in self.params)
        try:
            cursor = connection.cursor()
            cursor.execute(f"EXECUTE {self.name} ({placeholders})", values)
            row = cursor.fetchone() if cursor.description else None
            cursor.close()
        except Exception as exc:
            self._local.connection = None
            connection.close()
            raise UnavailableError("the database is unavailable; retry later") from exc
        return tuple(row) if row is not None else None

    def _connection(self) -> Any:
        connection: Any = getattr(self._local, "connection", None)
        if connection is None:
            pooled = self.engine.raw_connection()
            pooled.detach()  # this thread keeps it: no checkout per request
            connection = pooled.dbapi_connection
            connection.autocommit = True
            cursor = connection.cursor()
            cursor.execute(f"PREPARE {self.name} AS {self.postgres_sql}")
            cursor.close()
            self._local.connection = connection
        return connection


class PreparedQuery:
    """Read statements prepared on a connection each worker thread keeps, in autocommit.

    For the one read the hottest searches make: a pooled session costs its checkout, its
    unit of work and its reset (about half a millisecond of Python around a statement of one
    or two). Statements are prepared on first use per connection, by name. A read is
    idempotent, so a connection found broken (the database restarted while it idled) is
    replaced and the read tried once more before the caller sees Server.Unavailable.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    def rows(
        self, name: str, postgres_sql: str, execute_sql: str, values: dict[str, Any]
    ) -> list[Any]:
        """The rows of ``execute_sql`` (``EXECUTE name (...)`` with %(key)s parameters);
        ``postgres_sql`` is what ``PREPARE name`` gets the first time a connection runs it."""
        for attempt in (1, 2):
            connection, prepared = self._connection()
            try:
                cursor = connection.cursor()
                if name not in prepared:
                    cursor.execute(f"PREPARE {name} {postgres_sql}")
                    prepared.add(name)
                cursor.execute(execute_sql, values)
                rows: list[Any] = cursor.fetchall()
                cursor.close()
                return rows
            except self._broken as exc:
                self._local.connection = None
                connection.close()
                if attempt == 2:
                    raise UnavailableError("the database is unavailable; retry later") from exc
        raise AssertionError("unreachable")

    @property
    def _broken(self) -> tuple[type[Exception], ...]:
        dbapi = self.engine.dialect.loaded_dbapi  # PEP 249: every driver has both classes
        return (dbapi.OperationalError, dbapi.InterfaceError)

    def _connection(self) -> tuple[Any, set[str]]:
        held: tuple[Any, set[str]] | None = getattr(self._local, "connection", None)
        if held is None or held[0].closed:
            pooled = self.engine.raw_connection()
            pooled.detach()  # this thread keeps it: no checkout per request
            connection: Any = pooled.dbapi_connection
            connection.autocommit = True
            held = (connection, set())
            self._local.connection = held
        return held
