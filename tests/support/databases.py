"""Test databases: a fresh PostgreSQL database per session, or a temporary SQLite file.

PostgreSQL is found at GEMBUS_TEST_DATABASE_URL or the local server. When it cannot be
reached the PostgreSQL tests are skipped locally, but FAIL when GEMBUS_REQUIRE_POSTGRES=1
(.ci/run sets it), so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("GEMBUS_TEST_DATABASE_URL", DEFAULT_PG)


def postgres_required() -> bool:
    return os.environ.get("GEMBUS_REQUIRE_POSTGRES", "") in ("1", "true", "yes")


def postgres_unavailable(reason: str) -> None:
    """Fail in CI, skip on a developer machine without PostgreSQL."""
    message = f"PostgreSQL is not reachable at {postgres_admin_url()}: {reason}"
    if postgres_required():
        pytest.fail(message + " (GEMBUS_REQUIRE_POSTGRES=1 forbids skipping)")
    pytest.skip(message)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it afterwards."""
    admin_url = make_url(postgres_admin_url())
    name = f"gembus_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any connection failure means "not reachable"
        admin.dispose()
        postgres_unavailable(f"{type(exc).__name__}: {exc}".splitlines()[0])
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def kept_postgres_database(name: str, *, regenerate: bool = False) -> str:
    """A named database that outlives the run (benchmark datasets take minutes to generate):
    created when missing, dropped and created again with ``regenerate``; returns its URL."""
    admin_url = make_url(postgres_admin_url())
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": name}
        ).first()
        if exists and regenerate:
            connection.execute(text(f'DROP DATABASE "{name}"'))
            exists = None
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.set(database=name).render_as_string(hide_password=False)
